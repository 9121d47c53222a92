"""The edge's durable outbox: every touchpoint event waits here until HQ acknowledges it.

The edge process appends; the sync agent reads in ``seq`` order and deletes what HQ's ``ack``
covers. Both share one SQLite file in WAL mode. ``seq`` comes from a counter row updated in the
same transaction as the insert, so it is gap-free and never reused, even after the table empties.

When the outbox holds ``capacity`` events, new events are refused rather than old ones evicted:
what reaches HQ then stays contiguous (no false gap), and every refused event is counted in
``stats().dropped`` (persisted), in the sync agent's status message and in ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from contract.envelope import make_event

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PendingEvent:
    """One stored event, as the sync agent publishes it: its seq and its JSON bytes."""

    seq: int
    body: bytes


@dataclass(frozen=True)
class OutboxStats:
    depth: int  # events waiting for HQ's ack
    oldest_age_s: float  # age of the oldest waiting event, 0 when empty
    last_seq: int  # highest seq ever assigned
    acked_upto: int  # highest seq HQ has acknowledged
    dropped: int  # events refused because the outbox was full or the disk was


class Outbox:
    """Append events, read them in ``seq`` order, forget them once acknowledged.

    Thread-safe: one connection guarded by a lock (appends take microseconds).
    """

    def __init__(self, path: str | Path, source: str, capacity: int = 1_000_000) -> None:
        self.path = str(path)
        self.source = source
        self.capacity = capacity
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        self._unsaved_drops = 0
        self._create_schema()

    def _create_schema(self) -> None:
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock, self._transaction():
            # Plain SQL, not sqlite-utils: importing it (and numpy with it) cost the sync agent and
            # the edge about 23 MB of RSS and 0.2 s of start-up for this one statement.
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, id TEXT, created FLOAT, body BLOB)"
            )
            # One row of counters, so an append is one guarded UPDATE, one SELECT and its INSERT.
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS outbox_counters (id INTEGER PRIMARY KEY CHECK (id = 1),"
                " seq INTEGER NOT NULL, acked INTEGER NOT NULL, dropped INTEGER NOT NULL,"
                " schema INTEGER NOT NULL)"
            )
            self.conn.execute("INSERT OR IGNORE INTO outbox_counters VALUES (1, 0, 0, 0, ?)", (SCHEMA_VERSION,))

    def _transaction(self) -> Any:
        return _Immediate(self.conn)

    def append(self, name: str, data: Mapping[str, Any], *, at: datetime | None = None) -> dict[str, Any] | None:
        """Record one event; returns it, or None when it was refused (full outbox or disk)."""
        stored = self.append_many([(name, data)], at=at)
        return stored[0] if stored else None

    def append_many(
        self, items: Iterable[tuple[str, Mapping[str, Any]]], *, at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Record several events in one transaction; all are stored or all are refused."""
        items = list(items)
        events = [make_event(name, data, source=self.source, time=at) for name, data in items]
        now = time.time()
        with self._lock:
            try:
                with self._transaction():
                    # (UPDATE ... RETURNING costs twice as much as UPDATE then SELECT here.)
                    allocated = self.conn.execute(
                        "UPDATE outbox_counters SET seq = seq + ?1 WHERE seq + ?1 - acked <= ?2",
                        (len(events), self.capacity),
                    ).rowcount
                    if not allocated:
                        self._count_dropped(len(events))
                        log.warning("outbox full (%d events): refused %d", self.capacity, len(events))
                        return []
                    (last,) = self.conn.execute("SELECT seq FROM outbox_counters").fetchone()
                    first = last - len(events) + 1
                    rows = []
                    for offset, event in enumerate(events):
                        event["seq"] = first + offset
                        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                        rows.append((event["seq"], event["id"], now, body.encode()))
                    self.conn.executemany("INSERT INTO events(seq, id, created, body) VALUES (?, ?, ?, ?)", rows)
            except sqlite3.OperationalError as error:
                # A full disk or a locked file must not take the screen down: count and go on.
                self._unsaved_drops += len(events)
                log.error("outbox write failed, %d event(s) not recorded: %s", len(events), error)
                return []
        return events

    def _count_dropped(self, count: int) -> None:
        count += self._unsaved_drops
        self.conn.execute("UPDATE outbox_counters SET dropped = dropped + ?", (count,))
        self._unsaved_drops = 0

    def pending(self, after_seq: int = 0, limit: int = 500, max_bytes: int = 256 * 1024) -> list[PendingEvent]:
        """Waiting events with ``seq > after_seq`` in order, at most ``limit`` and about ``max_bytes``.

        Always returns at least one event when any is waiting, however large.
        """
        with self._lock:
            rows = self.conn.execute(
                "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        batch: list[PendingEvent] = []
        size = 0
        for seq, body in rows:
            if batch and size + len(body) > max_bytes:
                break
            batch.append(PendingEvent(seq, bytes(body)))
            size += len(body) + 1
        return batch

    def acknowledge(self, upto: int) -> int:
        """Forget every event with ``seq <= upto``; returns how many were removed."""
        with self._lock, self._transaction():
            removed = self.conn.execute("DELETE FROM events WHERE seq <= ?", (upto,)).rowcount
            self.conn.execute("UPDATE outbox_counters SET acked = max(acked, ?)", (upto,))
        return removed

    def stats(self) -> OutboxStats:
        with self._lock:
            oldest = self.conn.execute("SELECT created FROM events ORDER BY seq LIMIT 1").fetchone()
            seq, acked, dropped = self.conn.execute("SELECT seq, acked, dropped FROM outbox_counters").fetchone()
        return OutboxStats(
            depth=seq - min(acked, seq),  # acks are contiguous, so this is O(1)
            oldest_age_s=max(0.0, time.time() - oldest[0]) if oldest else 0.0,
            last_seq=seq,
            acked_upto=acked,
            dropped=dropped + self._unsaved_drops,
        )

    def close(self) -> None:
        with self._lock:
            self.conn.close()


class _Immediate:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: take the write lock up front so two processes never deadlock."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
