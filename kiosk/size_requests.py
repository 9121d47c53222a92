"""The staff queue of size and colour requests, kept in the edge's SQLite file (``kiosk_requests``).

A shopper asks from the cabin; staff claim the request, bring the garment or cancel. The queue
lives on disk so a restart of the edge process loses no open request.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.errors import TouchpointError

OPEN_STATES = ("open", "claimed")
# action -> (states it may start from, state it leads to)
TRANSITIONS = {
    "claim": (("open",), "claimed"),
    "brought": (("open", "claimed"), "brought"),
    "cancel": (("open", "claimed"), "cancelled"),
}


class RequestNotFound(TouchpointError, LookupError):
    """No request has that id."""


class RequestStateError(TouchpointError, ValueError):
    """The action does not fit the request's state (e.g. bringing a cancelled request)."""


@dataclass(frozen=True)
class SizeRequest:
    id: str
    session_id: str
    zone: str
    gtin: str  # the garment the shopper has
    requested_gtin: str  # the size/colour they want
    size: str
    colour: str
    state: str
    created: float
    updated: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestQueue:
    """Create and move size requests; one connection, guarded by a lock."""

    def __init__(self, path: str | Path) -> None:
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS kiosk_requests (id TEXT PRIMARY KEY, session_id TEXT NOT NULL,"
                " zone TEXT NOT NULL, gtin TEXT NOT NULL, requested_gtin TEXT NOT NULL, size TEXT NOT NULL,"
                " colour TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL)"
            )

    def create(
        self,
        *,
        session_id: str,
        zone: str,
        gtin: str,
        requested_gtin: str,
        size: str,
        colour: str,
        now: float,
    ) -> SizeRequest:
        request = SizeRequest(uuid.uuid4().hex, session_id, zone, gtin, requested_gtin, size, colour, "open", now, now)
        with self._lock:
            self.conn.execute(
                "INSERT INTO kiosk_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(asdict(request).values()),
            )
        return request

    def get(self, request_id: str) -> SizeRequest:
        """Raises RequestNotFound."""
        with self._lock:
            row = self.conn.execute("SELECT * FROM kiosk_requests WHERE id = ?", (request_id,)).fetchone()
        if row is None:
            raise RequestNotFound(f"request {request_id!r}: no such request")
        return SizeRequest(*row)

    def open_requests(self) -> list[SizeRequest]:
        """Requests staff still have to act on, oldest first."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT * FROM kiosk_requests WHERE state IN (?, ?) ORDER BY created", OPEN_STATES
            ).fetchall()
        return [SizeRequest(*row) for row in rows]

    def for_session(self, session_id: str) -> list[SizeRequest]:
        """A session's requests in every state, oldest first: what its screen shows."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT * FROM kiosk_requests WHERE session_id = ? ORDER BY created", (session_id,)
            ).fetchall()
        return [SizeRequest(*row) for row in rows]

    def move(self, request_id: str, action: str, now: float) -> SizeRequest:
        """Apply ``claim``, ``brought`` or ``cancel``; raises RequestNotFound or RequestStateError."""
        allowed_from, target = TRANSITIONS[action]
        with self._lock:
            changed = self.conn.execute(
                f"UPDATE kiosk_requests SET state = ?, updated = ? WHERE id = ?"
                f" AND state IN ({','.join('?' * len(allowed_from))})",
                (target, now, request_id, *allowed_from),
            ).rowcount
        request = self.get(request_id)
        if not changed:
            raise RequestStateError(f"request {request_id}: cannot {action} a request that is {request.state}")
        return request

    def close(self) -> None:
        with self._lock:
            self.conn.close()
