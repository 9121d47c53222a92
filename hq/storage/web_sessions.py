"""Dashboard sessions in HQ's database (mixed into ``SqlStorage``), so that every web process behind a
proxy sees a logout at once, and a restart forgets none.

The id a cookie carries is a secret: only its SHA-256 reaches the database, so the table (or a
backup of it) opens no session. Expired rows are pruned by the next login, which keeps the table
as small as the logins of one lifetime.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from hq.storage.base import Storage


def id_hash(session_id: str) -> str:
    """What the database keeps of a session id (the id is 256 random bits: no salt needed)."""
    return hashlib.sha256(session_id.encode("utf-8", errors="replace")).hexdigest()


class WebSessionStore(Storage):
    """The ``web_sessions`` table; the SQL backend supplies transactions and time conversion."""

    def open_web_session(self, session_id: str, user: str, now: datetime, expires_at: datetime) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (self.time_param(now),))
            cur.execute(
                "INSERT INTO web_sessions (id_hash, username, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (id_hash(session_id), user, self.time_param(now), self.time_param(expires_at)),
            )

    def web_session_user(self, session_id: str, now: datetime) -> str | None:
        rows = self.fetchall(
            "SELECT username FROM web_sessions WHERE id_hash = ? AND revoked_at IS NULL AND expires_at > ?",
            (id_hash(session_id), self.time_param(now)),
        )
        return str(rows[0][0]) if rows else None

    def revoke_web_session(self, session_id: str, now: datetime) -> bool:
        with self.transaction() as cur:
            revoked = cur.execute(
                "UPDATE web_sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL RETURNING id_hash",
                (self.time_param(now), id_hash(session_id)),
            )
        return bool(revoked)
