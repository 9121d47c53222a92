"""HQ's retained downlink (catalog, recommendations, config), kept versioned in the shared SQLite file.

Each kind is one row holding the whole document, replaced in one transaction, so a reader sees
either the old catalogue or the new one, never half of each. A document replaces the stored one
only when its ``version`` is newer: the broker re-delivers retained messages on every
subscribe, and an old message must never undo a newer one.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from common.errors import TouchpointError
from contract.envelope import EnvelopeError, parse_time
from contract.topics import DOWNLINK_KINDS


class DownlinkError(TouchpointError, ValueError):
    """A downlink message is malformed; ``kind`` and ``reason`` say which and why."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")


def newer(candidate: str, current: str) -> bool:
    """Whether version ``candidate`` supersedes ``current``.

    Two whole numbers compare as numbers, two RFC 3339 times as instants, anything else as
    strings; so "10" beats "9" and "2026-11-23T10:00:00+01:00" loses to "2026-11-23T09:30:00Z".
    """
    a_int, b_int = _as_int(candidate), _as_int(current)
    if a_int is not None and b_int is not None:
        return a_int > b_int
    a_time, b_time = _as_time(candidate), _as_time(current)
    if a_time is not None and b_time is not None:
        return a_time > b_time
    return candidate > current


def _as_int(version: str) -> int | None:
    return int(version) if re.fullmatch(r"[0-9]{1,30}", version) else None


def _as_time(version: str) -> datetime | None:
    try:
        return parse_time(version)
    except EnvelopeError:
        return None


def parse(kind: str, payload: bytes) -> tuple[str, dict[str, Any]]:
    """The version and document of a downlink payload; raises DownlinkError when malformed."""
    if kind not in DOWNLINK_KINDS:
        raise DownlinkError(kind, f"unknown kind; expected one of {', '.join(DOWNLINK_KINDS)}")
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        raise DownlinkError(kind, "not JSON") from None
    if not isinstance(document, dict):
        raise DownlinkError(kind, "must be a JSON object")
    version = document.get("version")
    if not isinstance(version, str) or not 0 < len(version) <= 100:
        raise DownlinkError(kind, "'version' must be a string of 1 to 100 characters")
    if kind == "catalog":
        _check_catalog(document)
    return version, document


def _check_catalog(document: dict[str, Any]) -> None:
    """The kiosk's own catalogue rules, so a catalogue the screens would reject is never stored."""
    from contract.catalog import CatalogError  # imported late: kiosk.catalog reads this module
    from contract.catalog import parse as parse_catalog

    try:
        parse_catalog(document, origin="downlink", image_root=None)
    except CatalogError as error:
        raise DownlinkError("catalog", str(error)) from None


class DownlinkStore:
    """The ``downlink`` table: one current document per kind. Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
        self._lock = threading.Lock()
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS downlink (kind TEXT PRIMARY KEY, version TEXT NOT NULL, "
            "body BLOB NOT NULL, applied_at REAL NOT NULL)"
        )
        self.conn.create_function("newer", 2, newer, deterministic=True)

    def apply(self, kind: str, payload: bytes, now: float | None = None) -> bool:
        """Store a document if newer; returns whether it replaced the stored one.

        Raises DownlinkError when the payload is malformed; nothing is changed then.
        """
        version, _ = parse(kind, payload)
        with self._lock:
            # One statement, so the version check and the replacement are one transaction.
            cursor = self.conn.execute(
                "INSERT INTO downlink (kind, version, body, applied_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind) DO UPDATE SET version = excluded.version, body = excluded.body, "
                "applied_at = excluded.applied_at WHERE newer(excluded.version, downlink.version)",
                (kind, version, bytes(payload), time.time() if now is None else now),
            )
        return cursor.rowcount == 1

    def get(self, kind: str) -> dict[str, Any] | None:
        """The current document of ``kind``, or None when HQ has not sent one yet."""
        with self._lock:
            row = self.conn.execute("SELECT body FROM downlink WHERE kind = ?", (kind,)).fetchone()
        return json.loads(row[0]) if row else None

    def version(self, kind: str) -> str | None:
        with self._lock:
            return self._version(kind)

    def _version(self, kind: str) -> str | None:
        row = self.conn.execute("SELECT version FROM downlink WHERE kind = ?", (kind,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._lock:
            self.conn.close()
