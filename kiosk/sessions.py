"""Shopper sessions: pure logic, every method takes ``now`` (epoch seconds) and does no I/O.

A session belongs to one shopper, never to a device. A mirror's session starts with the first
garment in the cabin (or a touch) and ends once the cabin has been empty and untouched for
``cabin_empty_s``; a kiosk's starts with a touch and ends after ``kiosk_idle_s`` untouched. Either
ends at once when the shopper says so, and whatever comes next starts a new session with a new
random id, so a shared screen never joins two shoppers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

# How long after its end a session can still be rated by the end-of-session survey.
SURVEY_WINDOW_S = 120.0


@dataclass(frozen=True)
class Session:
    session_id: str
    started_at: float
    customer: str | None = None


@dataclass(frozen=True)
class SessionChange:
    """A session started or ended; ``reason`` and ``duration_ms`` are set for ``ended``."""

    kind: str  # "started" | "ended"
    session: Session
    at: float
    reason: str | None = None
    duration_ms: int | None = None


def new_session_id() -> str:
    return uuid.uuid4().hex


class Sessions:
    """The current session of one screen (``role`` ``mirror`` or ``kiosk``)."""

    def __init__(self, role: str, idle_s: float, new_id: Callable[[], str] = new_session_id) -> None:
        if role not in ("mirror", "kiosk"):
            raise ValueError(f"role: {role!r} is not mirror or kiosk")
        self.role = role
        self.idle_s = idle_s
        self._new_id = new_id
        self._current: Session | None = None
        self._last_activity = 0.0
        self._occupied = False  # mirror: garments present in the cabin
        self._last_ended: tuple[Session, float] | None = None

    def current(self) -> Session | None:
        return self._current

    def touch(self, now: float) -> list[SessionChange]:
        """The shopper touched the screen: starts a session when none runs, else keeps it alive."""
        self._last_activity = now
        if self._current is not None:
            return []
        self._current = Session(self._new_id(), now)
        return [SessionChange("started", self._current, now)]

    def arrived(self, now: float) -> list[SessionChange]:
        """A garment arrived in the zone: in a cabin it is occupied; on a kiosk pad it is a touch."""
        if self.role == "mirror":
            self._occupied = True
        return self.touch(now)

    def emptied(self, now: float) -> None:
        """The last garment left the cabin: from now on the empty-cabin timeout runs."""
        self._occupied = False
        self._last_activity = now

    def end(self, now: float, reason: str = "shopper") -> list[SessionChange]:
        """End the running session, if any (the shopper's button, or staff)."""
        session = self._current
        if session is None:
            return []
        self._current = None
        self._last_ended = (session, now)
        duration_ms = int(round((now - session.started_at) * 1000))
        return [SessionChange("ended", session, now, reason, max(0, duration_ms))]

    def expire(self, now: float) -> list[SessionChange]:
        """End the session once it has been idle (kiosk) or its cabin empty (mirror) long enough."""
        if self._current is None or (self.role == "mirror" and self._occupied):
            return []
        if now - self._last_activity < self.idle_s:
            return []
        return self.end(now, "empty" if self.role == "mirror" else "idle")

    def identify(self, customer: str) -> Session | None:
        """Link the running session to a customer token; returns it, or None when none runs."""
        if self._current is None:
            return None
        self._current = Session(self._current.session_id, self._current.started_at, customer)
        return self._current

    def to_rate(self, now: float) -> Session | None:
        """The session feedback is about: the running one, else one that ended moments ago."""
        if self._current is not None:
            return self._current
        if self._last_ended and now - self._last_ended[1] <= SURVEY_WINDOW_S:
            return self._last_ended[0]
        return None
