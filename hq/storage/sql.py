"""The SQL behind :class:`hq.storage.Storage`, once, for SQLite and PostgreSQL.

The two backends differ only in how they connect, how a transaction takes its lock and how
timestamps and JSON travel; the statements are shared. Several ingest workers are safe: a
device batch locks that device's row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite) before it merges seq ranges, so concurrent batches of one device
serialise and ``contiguous_seq`` is always right; inserts are idempotent on ``(source, id)``.
Each commit that stores or deletes events bumps the ``event_hours`` rows of their hours, under
its connection's ``writer`` so that workers never queue on one another's rows.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from hq.core.identity import ConsentChange
from hq.core.records import BatchOutcome, DeadLetter, DeviceBatch, DeviceReport, DeviceStatus, EventRow, hour_of
from hq.core.seqranges import SeqState, merge
from hq.storage import schema
from hq.storage.base import Cursor
from hq.storage.identity import LINK_TYPES, IdentityStore
from hq.storage.reads import EventReads
from hq.storage.report_sql import RollupReads
from hq.storage.rollups import RollupStore
from hq.storage.rows import stored_event
from hq.storage.web_sessions import WebSessionStore

EVENT_COLUMNS = (
    "source",
    "id",
    "type",
    "time",
    "seq",
    "store",
    "device",
    "channel",
    "session_id",
    "customer",
    "anonymous_id",
    "gtin",
    "data",
    "received_at",
)
INSERT_EVENTS = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES"
ROW_MARKS = f"({', '.join('?' * len(EVENT_COLUMNS))})"
INSERT_ROWS = 500  # rows per insert: 7,000 parameters, under every backend's limit
# One event and nothing else: how events were stored before HQ kept identity and rollups (the
# upgrade tests and the benchmarks' raw-insert baseline).
INSERT_EVENT = f"{INSERT_EVENTS} {ROW_MARKS} ON CONFLICT (source, id) DO NOTHING"
INSERT_DEAD = (
    "INSERT INTO dead_letters (received_at, topic, reason, kind, raw, source, event_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
BUMP_HOUR = (
    "INSERT INTO event_hours (hour, writer, version) VALUES (?, ?, 1)"
    " ON CONFLICT (hour, writer) DO UPDATE SET version = event_hours.version + 1"
)
SEEN = "last_seen = CASE WHEN last_seen IS NULL OR last_seen < ? THEN ? ELSE last_seen END"


class SqlStorage(EventReads, IdentityStore, RollupStore, RollupReads, WebSessionStore):
    """Shared statements; subclasses supply connections, locking and value conversion."""

    lock_clause = ""

    def __init__(self) -> None:
        self._local = threading.local()
        self._connections: list[Any] = []
        self._guard = threading.Lock()
        self._migrate()

    # -- backend hooks -------------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin(self, conn: Any) -> Any:
        """A context manager around one transaction on ``conn``."""
        raise NotImplementedError

    def _begin_read(self, conn: Any) -> Any:
        """A context manager around one read-only transaction that sees one state throughout."""
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    def time_param(self, moment: datetime) -> Any:
        return moment

    def time_value(self, value: Any) -> datetime | None:
        return value

    def _lock_schema(self, cursor: Cursor) -> None:
        """Keep two processes from migrating at once (SQLite's write lock already does)."""

    # -- plumbing -----------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    @property
    def writer(self) -> int:
        """This thread's key in ``event_hours``, random (writer 0 is the migration's backfill). Per
        thread, not per instance: the ingest workers of one process share a storage, and a shared
        row would make each wait for the other's commit to bump the current hour."""
        writer = getattr(self._local, "writer", None)
        if writer is None:
            writer = self._local.writer = secrets.randbelow(2**62 - 1) + 1
        return writer

    @contextmanager
    def _using(self) -> Iterator[Any]:
        """This thread's connection; one the server dropped is forgotten, so the next call reconnects."""
        conn = self._conn()
        try:
            yield conn
        except Exception:
            if getattr(conn, "broken", False):
                self._local.conn = None
                with self._guard:
                    self._connections.remove(conn)
                conn.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self._using() as conn, self._begin(conn):
            yield _Cursor(conn, self._sql)

    @contextmanager
    def snapshot(self) -> Iterator[Cursor]:
        with self._using() as conn, self._begin_read(conn):
            yield _Cursor(conn, self._sql)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._using() as conn:
            return _Cursor(conn, self._sql).execute(sql, params)

    def close(self) -> None:
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        with self.transaction() as cur:
            self._lock_schema(cur)
            cur.execute(schema.version_table(self.dialect))
            (current,) = cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0]
            for migration in schema.pending(self.dialect, current):
                for statement in migration.statements:
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_version (version, title, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.title, self.time_param(datetime.now(timezone.utc))),
                )

    def schema_version(self) -> int:
        return int(self.fetchall("SELECT MAX(version) FROM schema_version")[0][0])

    # -- writes -------------------------------------------------------------------------------
    def _events_params(self, rows: Sequence[EventRow]) -> list[tuple[Any, ...]]:
        """Rows of one message share their receive time: it is converted once, not per row."""
        if not rows:
            return []
        at = rows[0].received_at
        shared = self.time_param(at)
        return [
            (
                row.source,
                row.id,
                row.type,
                self.time_param(row.time),
                row.seq,
                row.store,
                row.device,
                row.channel,
                row.session_id,
                row.customer,
                row.anonymous_id,
                row.gtin,
                row.data,
                shared if row.received_at == at else self.time_param(row.received_at),
            )
            for row in rows
        ]

    def _dead_params(self, letter: DeadLetter) -> tuple[Any, ...]:
        return (
            self.time_param(letter.received_at),
            letter.topic,
            letter.reason,
            letter.kind,
            letter.raw,
            letter.source,
            letter.event_id,
        )

    def _insert_events(self, cur: Cursor, rows: Sequence[EventRow]) -> int:
        """Insert idempotently; returns how many were new. The new ones bump their hours and feed
        identity and the rollups, each exactly once however often a batch is re-sent."""
        new = self._insert_new(cur, rows)
        if new:
            self._bump_hours(cur, (row.time for row in new))
            events = [(stored_event(row), row.time) for row in new]  # data decoded once, for both
            self._file_evidence(cur, [(event, time) for event, time in events if event["type"] in LINK_TYPES])
            self._file(cur, events)
        return len(new)

    def _insert_new(self, cur: Cursor, rows: Sequence[EventRow]) -> list[EventRow]:
        """The rows that were not stored yet, inserted: multi-row inserts that return what they stored."""
        params = self._events_params(rows)
        stored: set[tuple[str, str]] = set()
        for i in range(0, len(params), INSERT_ROWS):
            chunk = params[i : i + INSERT_ROWS]
            values = ", ".join([ROW_MARKS] * len(chunk))
            stored.update(
                cur.execute(
                    f"{INSERT_EVENTS} {values} ON CONFLICT (source, id) DO NOTHING RETURNING source, id",
                    [value for row in chunk for value in row],
                )
            )
        new = []
        for row in rows:
            if (row.source, row.id) in stored:
                stored.discard((row.source, row.id))  # a batch may repeat an event: the first is the stored one
                new.append(row)
        return new

    def _bump_hours(self, cur: Cursor, moments: Iterable[datetime]) -> None:
        """Bump the distinct hours of ``moments``, in ascending order so that row locks are always
        taken in one order."""
        cur.executemany(BUMP_HOUR, [(hour, self.writer) for hour in sorted({hour_of(m) for m in moments})])

    def store_device_batch(self, batch: DeviceBatch) -> BatchOutcome:
        key = (batch.device.store, batch.device.device)
        seen = self.time_param(batch.received_at)
        with self.transaction() as cur:
            cur.execute("INSERT INTO devices (store, device) VALUES (?, ?) ON CONFLICT DO NOTHING", key)
            (contiguous,) = cur.execute(
                "SELECT contiguous_seq FROM devices WHERE store = ? AND device = ?" + self.lock_clause, key
            )[0]
            stored = self._insert_events(cur, batch.events)
            cur.executemany(INSERT_DEAD, [self._dead_params(d) for d in batch.dead])
            ranges = cur.execute("SELECT lo, hi FROM seq_ranges WHERE store = ? AND device = ? ORDER BY lo", key)
            before = SeqState(int(contiguous), tuple((int(lo), int(hi)) for lo, hi in ranges))
            after = merge(before, batch.seqs)
            if after != before:
                cur.execute("DELETE FROM seq_ranges WHERE store = ? AND device = ?", key)
                cur.executemany(
                    "INSERT INTO seq_ranges (store, device, lo, hi) VALUES (?, ?, ?, ?)",
                    [(*key, lo, hi) for lo, hi in after.ranges],
                )
            cur.execute(
                f"UPDATE devices SET contiguous_seq = ?, stored = stored + ?, {SEEN} WHERE store = ? AND device = ?",
                (after.contiguous, stored, seen, seen, *key),
            )
            at_us = time.time_ns() // 1000  # still under the row lock, so in commit order
        return BatchOutcome(stored, len(batch.events) - stored, after.contiguous, after.ranges, at_us)

    def store_events(self, rows: Sequence[EventRow]) -> int:
        with self.transaction() as cur:
            return self._insert_events(cur, rows)

    def store_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        with self.transaction() as cur:
            cur.executemany(INSERT_DEAD, [self._dead_params(d) for d in letters])

    def record_status(self, status: DeviceStatus) -> None:
        seen = self.time_param(status.received_at)
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO devices (store, device) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (status.device.store, status.device.device),
            )
            cur.execute(
                f"UPDATE devices SET state = ?, backlog = COALESCE(?, backlog), status = ?,"
                f" status_at = ?, {SEEN} WHERE store = ? AND device = ?",
                (status.state, status.backlog, status.raw, seen, seen, seen, status.device.store, status.device.device),
            )

    def set_consent(self, change: ConsentChange) -> None:
        customer = change.customer.split(":", 1)[1]
        with self.transaction() as cur:
            cur.execute("DELETE FROM consents WHERE customer = ?", (customer,))
            cur.execute(
                "INSERT INTO consents (customer, state, time, id) VALUES (?, ?, ?, ?)",
                (customer, change.state, self.time_param(change.time), change.event_id),
            )
            self._restitch(cur, [change.customer])

    def erase(self, keys: Sequence[tuple[str, str]], values: Sequence[str], customer: str) -> tuple[int, int]:
        with self.transaction() as cur:
            cur.execute("DELETE FROM consents WHERE customer = ?", (customer,))
            self._forget_evidence(cur, keys)
            removed = [
                row
                for key in keys
                for row in cur.execute(
                    "DELETE FROM events WHERE source = ? AND id = ? RETURNING time, store, device, seq", key
                )
            ]
            moments = [m for m in (self.time_value(time) for time, *_ in removed) if m is not None]
            self._bump_hours(cur, moments)
            self._refile_hours(cur, {hour_of(m) for m in moments})
            per_device = Counter((store, device) for _, store, device, seq in removed if seq is not None)
            for (store, device), count in per_device.items():
                cur.execute(
                    "UPDATE devices SET stored = stored - ? WHERE store = ? AND device = ?", (count, store, device)
                )
            dead = sum(len(cur.execute(self._dead_letter_delete(), (v.encode(), v, v))) for v in sorted(set(values)))
        return len(removed), dead

    def _dead_letter_delete(self) -> str:
        """Dead letters whose payload, source or event id contains a value (bytes, text, text)."""
        if self.dialect == "postgres":
            contains = "position(? in raw) > 0 OR position(? in COALESCE(source, '')) > 0"
        else:
            contains = "instr(raw, ?) > 0 OR instr(COALESCE(source, ''), ?) > 0"
        return f"DELETE FROM dead_letters WHERE {contains} OR COALESCE(event_id, '') = ? RETURNING n"

    # -- reads --------------------------------------------------------------------------------
    def ping(self) -> None:
        self.fetchall("SELECT 1")

    def consents(self) -> list[ConsentChange]:
        rows = self.fetchall("SELECT customer, state, time, id FROM consents")
        return [ConsentChange(self.time_value(t) or datetime.min, i, f"customer:{c}", s) for c, s, t, i in rows]

    def hour_versions(self, first: int, end: int) -> dict[int, int]:
        rows = self.fetchall(
            "SELECT hour, SUM(version) FROM event_hours WHERE hour >= ? AND hour < ? GROUP BY hour", (first, end)
        )
        return {int(hour): int(version) for hour, version in rows}  # PostgreSQL's SUM is a numeric

    def devices(self) -> list[DeviceReport]:
        ranges: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for store, device, lo, hi in self.fetchall(
            "SELECT store, device, lo, hi FROM seq_ranges ORDER BY store, device, lo"
        ):
            ranges.setdefault((store, device), []).append((int(lo), int(hi)))
        reports = []
        for store, device, state, last_seen, backlog, stored, contiguous in self.fetchall(
            "SELECT store, device, state, last_seen, backlog, stored, contiguous_seq"
            " FROM devices ORDER BY store, device"
        ):
            seqs = SeqState(int(contiguous), tuple(ranges.get((store, device), ())))
            reports.append(
                DeviceReport(
                    store,
                    device,
                    state == "online",
                    self.time_value(last_seen),
                    int(backlog),
                    int(stored),
                    int(contiguous),
                    tuple(seqs.gaps()),
                )
            )
        return reports

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self.fetchall(
            "SELECT received_at, topic, reason, raw, source, event_id FROM dead_letters ORDER BY n DESC LIMIT ?",
            (limit,),
        )
        return [
            DeadLetter(self.time_value(at) or datetime.min, topic, reason, bytes(raw), source, eid)
            for at, topic, reason, raw, source, eid in rows
        ]


class _Cursor(Cursor):
    def __init__(self, conn: Any, translate: Any) -> None:
        self.conn = conn
        self.translate = translate

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(self.translate(sql), tuple(params))
        try:
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        cursor = self.conn.cursor()
        try:
            cursor.executemany(self.translate(sql), rows)
            return max(cursor.rowcount, 0)
        finally:
            cursor.close()
