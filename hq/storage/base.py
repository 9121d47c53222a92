"""The one interface both of HQ's databases implement, and how to open one.

:class:`Storage` names every operation the ingestor, the analytics and the API need; the values
crossing it are ``hq.core.records``. Every SQL
statement of HQ lives in this package.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from common.errors import TouchpointError
from contract.envelope import utc_now_iso
from hq.core.identity import ConsentChange
from hq.core.records import (
    BatchOutcome,
    DeadLetter,
    DeviceBatch,
    DeviceReport,
    DeviceStatus,
    EventRow,
    JourneyRow,
)
from hq.core.rollup_report import PointInfo, RollupFigures, RollupQuery


class StorageError(TouchpointError, RuntimeError):
    """The database could not be opened, migrated or written."""


class Storage(abc.ABC):
    """HQ's database. Thread-safe: each thread gets its own connection.

    Queries are written once with ``?`` placeholders; ``transaction()`` and ``fetchall()``
    translate them for the backend. Only this package writes SQL: everyone else calls the named
    methods below.
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
    def ping(self) -> None:
        """A round trip to the database; raises when it does not answer."""

    @abc.abstractmethod
    def stores(self) -> list[str]:
        """Every store HQ knows of: from its devices and from the events that name one."""

    # -- events, for analytics and the API --------------------------------------------------------
    @abc.abstractmethod
    def read_events(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        names: Iterable[str] | None = None,
        page: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """Every stored event with ``start <= time < end`` (and one of ``names``), in key order, a page
        of ``page`` rows at a time."""

    @abc.abstractmethod
    def events_between(self, start: datetime, end: datetime) -> list[tuple[dict[str, Any], datetime]]:
        """The events with ``start <= time < end`` and their times: one indexed range query."""

    @abc.abstractmethod
    def events_naming(self, identifiers: Iterable[str]) -> list[dict[str, Any]]:
        """Every event that carries one of these typed identifiers (``customer:…``, ``session:…``,
        ``anon:…``) in an indexed column: after a graph changed, the events to re-attribute."""

    @abc.abstractmethod
    def journey_rows(self, identifiers: Iterable[str]) -> list[JourneyRow]:
        """Like ``events_naming`` without ``data``: key columns and identifier columns only."""

    @abc.abstractmethod
    def event_data(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """``data`` of the events with these ``(source, id)`` keys."""

    @abc.abstractmethod
    def stored_keys(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The ``(source, id)`` keys among these that HQ holds already."""

    @abc.abstractmethod
    def set_consent(self, change: ConsentChange) -> None:
        """Keep a consent statement made through the API, replacing the customer's earlier one."""

    @abc.abstractmethod
    def consents(self) -> list[ConsentChange]:
        """Every statement made through the API (the latest per customer)."""

    @abc.abstractmethod
    def persons_of(self, identifiers: Iterable[str]) -> dict[str, str]:
        """The canonical person of each of these identifiers that is stitched to another (the rest
        are persons of their own)."""

    @abc.abstractmethod
    def person_members(self, person: str) -> frozenset[str]:
        """Every identifier of a person, given its canonical id (itself alone when never stitched)."""

    @abc.abstractmethod
    def stitched(self) -> dict[str, str]:
        """Identifier -> person for every stitched identifier (what a report over everyone needs)."""

    @abc.abstractmethod
    def consent_states(self) -> dict[str, str]:
        """Each customer identifier's latest consent statement, from events and the API."""

    @abc.abstractmethod
    def pending_backfill(self) -> int:
        """How many stored link events ``backfill_identity`` has yet to read (0: nothing to do)."""

    @abc.abstractmethod
    def backfill_identity(self, progress: Callable[[int], None] = lambda done: None) -> bool:
        """Build identity from link events stored before migration 4; False when there was nothing to do."""

    @abc.abstractmethod
    def identity_version(self) -> int:
        """A number that grows whenever any identifier's person changes: reports cached under it
        know a late link or an erasure moved them."""

    @abc.abstractmethod
    def rollup_report(self, q: RollupQuery, arrange: Callable[[list[str]], list[PointInfo]]) -> RollupFigures:
        """What a touchpoint report counts, over the rollups of ``q``'s hours under today's persons;
        ``arrange`` numbers the touchpoints found (``hq.core.rollup_report.arrange``)."""

    @abc.abstractmethod
    def pending_rollups(self) -> int:
        """How many hours of stored events ``backfill_rollups`` has yet to file (0: nothing to do)."""

    @abc.abstractmethod
    def backfill_rollups(self, progress: Callable[[int], None] = lambda done: None) -> bool:
        """File the rollups of events stored before migration 5; False when there was nothing to do."""

    @abc.abstractmethod
    def erase(self, keys: Sequence[tuple[str, str]], values: Sequence[str], customer: str) -> tuple[int, int]:
        """In one transaction: delete these events (lowering their devices' ``stored``) with their
        identity evidence (restitching what it held together) and rollups (filing their hours
        again), every dead letter whose payload, source or event id contains one of ``values``, and
        the customer's consent statement;
        returns how many events and dead letters went."""

    # -- dashboard sessions (hq.web.sessions) -----------------------------------------------------
    @abc.abstractmethod
    def open_web_session(self, session_id: str, user: str, now: datetime, expires_at: datetime) -> None:
        """Keep a new dashboard session (its id hashed, never as given) and prune the expired ones."""

    @abc.abstractmethod
    def web_session_user(self, session_id: str, now: datetime) -> str | None:
        """The user of this session while it is neither revoked nor expired at ``now``, else None."""

    @abc.abstractmethod
    def revoke_web_session(self, session_id: str, now: datetime) -> bool:
        """End this session for every web process; False when it was unknown or ended already."""

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
