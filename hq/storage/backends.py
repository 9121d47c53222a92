"""The two databases behind :class:`hq.storage.sql.SqlStorage`: how each connects, takes its
transaction lock and carries timestamps."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hq.storage.base import Cursor, StorageError
from hq.storage.sql import SqlStorage


class SqliteStorage(SqlStorage):
    """One SQLite file in WAL mode; ``synchronous=FULL`` because an ack promises durability."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path == ":memory:":
            raise StorageError("HQ needs a database file: each thread opens its own connection")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        except sqlite3.Error as error:
            raise StorageError(f"cannot open {self.path}: {error}") from None
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextmanager
    def _begin(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _begin_read(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN")  # deferred: WAL gives the reads one snapshot and writers go on
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def time_param(self, moment: datetime) -> str:
        utc = moment if moment.tzinfo is timezone.utc else moment.astimezone(timezone.utc)  # rows are UTC already
        return utc.isoformat(timespec="microseconds")

    def time_value(self, value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    def time_text(self, value: Any) -> str:
        """Stored ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` cut to milliseconds, without parsing (years
        before 1000 take the general way, which writes them unpadded)."""
        if isinstance(value, str) and len(value) == 32 and value.endswith("+00:00") and value[0] != "0":
            return value[:23] + "Z"
        return super().time_text(value)


class PostgresStorage(SqlStorage):
    """PostgreSQL through psycopg 3: a connection per thread, autocommit outside transactions."""

    dialect = "postgres"
    lock_clause = " FOR UPDATE"

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__()

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, options="-c timezone=UTC")
        except psycopg.Error as error:
            raise StorageError(f"cannot connect to PostgreSQL: {error}") from None

    def _begin(self, conn: Any) -> Any:
        return conn.transaction()

    @contextmanager
    def _begin_read(self, conn: Any) -> Iterator[None]:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _lock_schema(self, cursor: Cursor) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(7461636801)")
