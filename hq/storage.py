"""What HQ stores and the one interface both databases implement.

Values crossing the storage boundary are frozen dataclasses; :class:`Storage` names every
operation the ingestor and the API need. ``open_storage(url)`` picks SQLite (the zero set-up
default) or PostgreSQL (several ingest workers, several machines) from ``[database] url``.

Events are also counted per UTC hour of their ``time`` (:func:`hour_of`): every write or delete
bumps its hours' versions, so analytics can cache an hour's results and know when they went stale.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sync.envelope import utc_now_iso
from sync.topics import DeviceTopics
from touchpoint.errors import TouchpointError


class StorageError(TouchpointError, RuntimeError):
    """The database could not be opened, migrated or written."""


@dataclass(frozen=True)
class EventRow:
    """One accepted event as the ``events`` table holds it; ``data`` is its JSON text."""

    source: str
    id: str
    type: str
    time: datetime
    seq: int | None
    store: str | None
    device: str | None
    channel: str  # 'store' for edge events, else web/app/pos/email
    session_id: str | None
    customer: str | None
    anonymous_id: str | None
    gtin: str | None
    data: str
    received_at: datetime


def reason_kind(reason: str) -> str:
    """A refusal reason's first clause, a bounded label for metrics (``data.gtin``, ``json``)."""
    return reason.split(":", 1)[0][:60]


@dataclass(frozen=True)
class DeadLetter:
    """Something HQ refused, kept with why, where from and (truncated) what it was."""

    received_at: datetime
    topic: str
    reason: str
    raw: bytes
    source: str | None = None
    event_id: str | None = None

    @property
    def kind(self) -> str:
        return reason_kind(self.reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "received_at": iso(self.received_at),
            "topic": self.topic,
            "reason": self.reason,
            "kind": self.kind,
            "source": self.source,
            "event_id": self.event_id,
            "raw": self.raw.decode("utf-8", errors="replace"),
        }


@dataclass(frozen=True)
class DeviceBatch:
    """One uplink message of one device, split into what to store and what to dead-letter.

    ``seqs`` are every seq the message accounts for: stored events and dead-lettered events
    that carry this device's source and a seq. Dead letters advance the ack too, or the device
    would re-send an event HQ will never accept, forever.
    """

    device: DeviceTopics
    received_at: datetime
    events: tuple[EventRow, ...] = ()
    dead: tuple[DeadLetter, ...] = ()
    seqs: tuple[int, ...] = ()


@dataclass(frozen=True)
class BatchOutcome:
    stored: int  # events new to HQ
    duplicates: int  # events HQ already held (re-sent)
    contiguous_seq: int  # after the commit: what the ack may say


@dataclass(frozen=True)
class DeviceStatus:
    """A device's retained status message (the will carries only ``state``)."""

    device: DeviceTopics
    state: str
    backlog: int | None
    raw: str
    received_at: datetime


@dataclass(frozen=True)
class DeviceReport:
    """One row of ``GET /v1/devices``."""

    store: str
    device: str
    online: bool
    last_seen: datetime | None
    backlog: int
    stored: int
    contiguous_seq: int
    gaps: tuple[tuple[int, int], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "device": self.device,
            "online": self.online,
            "last_seen": iso(self.last_seen) if self.last_seen else None,
            "backlog": self.backlog,
            "stored": self.stored,
            "contiguous_seq": self.contiguous_seq,
            "gaps": [list(gap) for gap in self.gaps],
        }


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hour_of(moment: datetime) -> int:
    """The UTC hour ``moment`` falls in, as whole hours since 1970 (negative before); exact, unlike
    float seconds. Raises TypeError for a naive datetime."""
    return (moment - EPOCH) // HOUR


def hour_start(hour: int) -> datetime:
    """The first instant of an :func:`hour_of` hour, in UTC."""
    return EPOCH + hour * HOUR


class Storage(abc.ABC):
    """HQ's database. Thread-safe: each thread gets its own connection.

    Queries are written once with ``?`` placeholders; ``transaction()`` and ``fetchall()``
    translate them for the backend, so analytics modules add SQL without caring which it is.
    Every method raises StorageError (or the driver's error) when the database fails.
    """

    dialect: str

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Cursor]:
        """A write transaction on this thread's connection; commits on success."""

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query outside any explicit transaction."""

    @abc.abstractmethod
    def time_param(self, moment: datetime) -> Any:
        """A time as a query parameter (SQLite keeps sortable UTC ISO text, PostgreSQL timestamptz)."""

    @abc.abstractmethod
    def time_value(self, value: Any) -> datetime | None:
        """A time column as read back, as an aware UTC datetime."""

    def time_text(self, value: Any) -> str:
        """A time column as an event's ``time`` (RFC 3339 UTC, milliseconds); backends may shortcut."""
        return utc_now_iso(self.time_value(value))

    @abc.abstractmethod
    def store_device_batch(self, batch: DeviceBatch) -> BatchOutcome:
        """Store a device's events idempotently and advance its seq ranges, in one transaction."""

    @abc.abstractmethod
    def store_events(self, rows: Sequence[EventRow]) -> int:
        """Store events without seq tracking (digital channels); returns how many were new."""

    @abc.abstractmethod
    def delete_events(self, cursor: Cursor, keys: Iterable[tuple[str, str]]) -> int:
        """Delete events by ``(source, id)`` in the caller's transaction, bumping their hours;
        returns how many there were."""

    @abc.abstractmethod
    def hour_versions(self, first: int, end: int) -> dict[int, int]:
        """The version of each hour in ``[first, end)`` that ever held an event; it grows with every
        commit that stores or deletes one of that hour's events. Read it before the events a cache
        keeps: a change committed in between then shows as a newer version on the next look."""

    @abc.abstractmethod
    def store_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep refused payloads that belong to no device batch (bad JSON, bad topic)."""

    @abc.abstractmethod
    def record_status(self, status: DeviceStatus) -> None:
        """Remember a device's latest status message."""

    @abc.abstractmethod
    def devices(self) -> list[DeviceReport]:
        """Every known device, ordered by store and device."""

    @abc.abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection this storage opened, on any thread."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cursor(abc.ABC):
    """The slice of DB-API a transaction hands out, with ``?`` placeholders on both backends."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; returns its rows (empty for writes)."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement per row; returns the rows changed in total."""


def open_storage(url: str) -> Storage:
    """``sqlite:///relative.db``, ``sqlite:////abs/hq.db`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        from hq.sqlstore import SqliteStorage

        return SqliteStorage(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        from hq.sqlstore import PostgresStorage

        return PostgresStorage(url)
    raise StorageError(f"unsupported database url {url!r}: use sqlite:///PATH or postgresql://...")
