"""The sync agent's own state, kept in one row of ``sync_state`` in the shared SQLite file.

The agent writes it; the edge app reads it with :func:`read` for the staff screen and
``/metrics`` (together with ``Outbox.stats()``), so the web process never needs an MQTT
connection or an RPC to the agent to say whether this device is syncing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import astuple, dataclass, fields
from pathlib import Path

_COLUMNS = (
    "state TEXT NOT NULL, acked_upto INTEGER NOT NULL, last_ack_at REAL, last_publish_at REAL, "
    "last_error TEXT NOT NULL, last_error_at REAL, updated_at REAL NOT NULL"
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

    @property
    def connected(self) -> bool:
        return self.state == "connected"


class StateTable:
    """The writer side, owned by the sync agent."""

    def __init__(self, path: str | Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS sync_state (id INTEGER PRIMARY KEY CHECK (id = 1), {_COLUMNS})")

    def write(self, state: SyncState) -> None:
        names = ", ".join(f.name for f in fields(SyncState))
        marks = ", ".join("?" for _ in fields(SyncState))
        self.conn.execute(f"INSERT OR REPLACE INTO sync_state (id, {names}) VALUES (1, {marks})", astuple(state))

    def close(self) -> None:
        self.conn.close()


def read(path: str | Path) -> SyncState | None:
    """The agent's last written state, or None when the agent has not run on this file yet."""
    if not Path(path).exists():
        return None
    names = ", ".join(f.name for f in fields(SyncState))
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        try:
            row = conn.execute(f"SELECT {names} FROM sync_state WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # no such table: the agent never started here
            return None
    return SyncState(*row) if row else None
