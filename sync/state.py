"""The sync agent's own state, kept in one row of ``sync_state`` in the shared SQLite file.

The agent writes it; the edge app reads it with :func:`read` for the staff screen and
``/metrics`` (together with ``Outbox.stats()``), so the web process never needs an MQTT
connection or an RPC to the agent to say whether this device is syncing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import astuple, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

_COLUMNS = (
    "state TEXT NOT NULL, acked_upto INTEGER NOT NULL, last_ack_at REAL, last_publish_at REAL, "
    "last_error TEXT NOT NULL, last_error_at REAL, updated_at REAL NOT NULL, "
    "refused_acks INTEGER NOT NULL, newest_ack_at_us INTEGER NOT NULL, unrecoverable TEXT NOT NULL"
)


@dataclass(frozen=True)
class SyncState:
    """Times are Unix epoch seconds; None means "never"."""

    state: str  # a common.mqtt.ConnectionState value: connected, connecting, disconnected, closed
    acked_upto: int  # highest seq HQ has acknowledged
    last_ack_at: float | None
    last_publish_at: float | None
    last_error: str  # the latest problem since the last successful connect, else empty
    last_error_at: float | None
    updated_at: float
    refused_acks: int = 0  # acks not signed with this device's key, ever (a Prometheus counter)
    newest_ack_at_us: int = 0  # HQ's clock in the newest signed ack applied: older ones are replays
    unrecoverable: tuple[tuple[int, int], ...] = field(default=())  # seqs HQ lacks that are deleted here

    @property
    def connected(self) -> bool:
        return self.state == "connected"


class StateTable:
    """The writer side, owned by the sync agent."""

    def __init__(self, path: str | Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
        self.previous = _read(self.conn)
        if self.previous is None:  # a new file, or the row of a version without the ack columns
            self.conn.execute("DROP TABLE IF EXISTS sync_state")
            self.conn.execute(f"CREATE TABLE sync_state (id INTEGER PRIMARY KEY CHECK (id = 1), {_COLUMNS})")

    def write(self, state: SyncState) -> None:
        names = ", ".join(f.name for f in fields(SyncState))
        marks = ", ".join("?" for _ in fields(SyncState))
        row = astuple(replace(state, unrecoverable=json.dumps(state.unrecoverable)))  # type: ignore[arg-type]
        self.conn.execute(f"INSERT OR REPLACE INTO sync_state (id, {names}) VALUES (1, {marks})", row)

    def close(self) -> None:
        self.conn.close()


def read(path: str | Path) -> SyncState | None:
    """The agent's last written state, or None when the agent has not run on this file yet."""
    if not Path(path).exists():
        return None
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        return _read(conn)


def _read(conn: sqlite3.Connection) -> SyncState | None:
    names = ", ".join(f.name for f in fields(SyncState))
    try:
        row: Any = conn.execute(f"SELECT {names} FROM sync_state WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # no such table (the agent never ran here) or an older one
        return None
    if not row:
        return None
    values = dict(zip((f.name for f in fields(SyncState)), row))
    values["unrecoverable"] = tuple((lo, hi) for lo, hi in json.loads(values["unrecoverable"]))
    return SyncState(**values)
