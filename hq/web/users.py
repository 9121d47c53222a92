"""Who may read HQ: dashboard users (``[hq] users``, name = password hash) and API bearer tokens.

Passwords are stored only as werkzeug hashes (scrypt); ``touchpoint hq add-user`` prints the
line to paste. Failed logins are throttled per user name and per client address, so guessing
is slow even from many addresses. The read API (journeys, touchpoints, erasure, consent) takes
either a dashboard session or ``Authorization: Bearer <[hq] api_token>``; event intake takes the
per-channel ``[hq.tokens]`` instead (``hq.web.events_api``).
"""

from __future__ import annotations

import functools
import hmac
import secrets
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app, jsonify, request
from werkzeug.security import check_password_hash, generate_password_hash

from hq.web import sessions

MAX_FAILURES = 5  # failed logins allowed per name or address within the window
FAILURE_WINDOW_S = 300.0
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_DUMMY = generate_password_hash(secrets.token_hex(8), method="scrypt")  # checked for unknown users


def hash_line(name: str, password: str) -> str:
    """``name = "scrypt:..."``, to paste under ``[hq.users]``; raises ValueError on a bad name."""
    if not name or not set(name) <= NAME_CHARS or len(name) > 64:
        raise ValueError("user name: 1 to 64 of a-z, 0-9, '-', '_' and '.'")
    if len(password) < 10:
        raise ValueError("password: at least 10 characters")
    return f'{name} = "{generate_password_hash(password, method="scrypt")}"'


def verify(users: Mapping[str, str], name: str, password: str) -> bool:
    """Whether the password is the user's; unknown users cost a hash too, so timing says nothing."""
    stored = users.get(name)
    if stored is None:
        check_password_hash(_DUMMY, password)
        return False
    return check_password_hash(stored, password)


class LoginThrottle:
    """Counts failed logins per key (name, address) over a sliding window; time is passed in."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, keys: list[str], now: float) -> bool:
        with self._lock:
            return any(len(self._recent(key, now)) >= self.limit for key in keys)

    def failed(self, keys: list[str], now: float) -> None:
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times


def bearer() -> str | None:
    """The request's bearer token, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty expected token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def reader_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """401 unless the request has the ``[hq] api_token`` bearer token or an open dashboard session
    (asked of the database: a logged-out session's cookie is refused)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if token_matches(bearer(), current_app.config["HQ"].hq.api_token) or sessions.current_user():
            return view(*args, **kwargs)
        response = jsonify(error="authentication: a dashboard session or Authorization: Bearer <api_token>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="touchpoint-hq"'
        return response, 401

    return wrapped
