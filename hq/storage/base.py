"""The one interface both of HQ's databases implement, and how to open one.

:class:`Storage` names every operation the ingestor, the analytics and the API need; the values
crossing it are ``hq.core.records``. Every SQL
statement of HQ lives in this package.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from common.errors import TouchpointError
from contract.envelope import utc_now_iso
from hq.core.records import BatchOutcome, DeadLetter, DeviceBatch, DeviceReport, DeviceStatus, EventRow


class StorageError(TouchpointError, RuntimeError):
    """The database could not be opened, migrated or written."""


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
