"""HQ's storage: the interface, SQLite and PostgreSQL behind it, the migrations; every SQL statement of HQ.

``open_storage(url)`` picks SQLite (the zero set-up default) or PostgreSQL (several ingest
workers, several machines) from ``[database] url``.
"""

from __future__ import annotations

from hq.storage.backends import PostgresStorage, SqliteStorage
from hq.storage.base import Cursor, Storage, StorageError

__all__ = ["Cursor", "Storage", "StorageError", "open_storage"]


def open_storage(url: str) -> Storage:
    """``sqlite:///relative.db``, ``sqlite:////abs/hq.db`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SqliteStorage(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStorage(url)
    raise StorageError(f"unsupported database url {url!r}: use sqlite:///PATH or postgresql://...")
