"""Dashboard sessions kept in HQ's database: logout ends exactly that session, in every web process.

The signed Flask cookie carries only a random session id (and the CSRF token). Each request that
uses a session (dashboard pages, the API's session path) asks the database whether that id is
still open, once per request, so a copy of the cookie is worth nothing after logout, in any web
process behind the proxy and after a restart with a fixed ``[hq] secret_key``. A session lasts
``LIFETIME`` from its login, however busy it is.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from flask import current_app, g, session

from hq.storage import Storage

LIFETIME = timedelta(hours=12)
KEY = "sid"  # the cookie session's member holding the id
_USER = "hq_session_user"  # flask.g: this request's answer, asked once


def _storage() -> Storage:
    storage: Storage = current_app.extensions["hq.storage"]
    return storage


def start(user: str) -> None:
    """Open a session for ``user`` with a fresh id; whatever session the cookie held is ended first,
    so no id from before the login survives it."""
    end()
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    _storage().open_web_session(session_id, user, now, now + LIFETIME)
    session[KEY] = session_id
    session.permanent = True
    setattr(g, _USER, user)


def current_user() -> str | None:
    """The user of the request's session; None without one, or when it was revoked or expired."""
    if hasattr(g, _USER):
        known: str | None = getattr(g, _USER)
        return known
    session_id = session.get(KEY)
    user = _storage().web_session_user(session_id, datetime.now(timezone.utc)) if isinstance(session_id, str) else None
    setattr(g, _USER, user)
    return user


def end() -> None:
    """Revoke the request's session in the database and clear the cookie."""
    session_id = session.get(KEY)
    if isinstance(session_id, str):
        _storage().revoke_web_session(session_id, datetime.now(timezone.utc))
    session.clear()
    setattr(g, _USER, None)
