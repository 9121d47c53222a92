"""The agent's send window over outbox ``seq``s: pure go-back-N, time passed in.

At most ``size`` batches are published and not yet covered by HQ's ``ack``. When the oldest of
them has waited ``timeout_s`` the window rewinds, and publishing starts again right after the
last acknowledged ``seq``; HQ stores idempotently, so a resend costs bandwidth, never a duplicate.
After a rewind only one batch may fly until an ack arrives, then the limit doubles back to
``size``: while HQ is down the device re-sends one batch per timeout, not the whole window.
The window holds seq ranges only, never event bodies, so its memory is bounded by ``size``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Batch:
    """Seqs ``first..last`` published together at ``sent_at`` (monotonic seconds)."""

    first: int
    last: int
    sent_at: float


class SendWindow:
    def __init__(self, acked: int, size: int, timeout_s: float) -> None:
        self.acked = acked
        self.size = size
        self.timeout_s = timeout_s
        self.limit = size  # batches allowed in flight now; 1 after a rewind, doubling on acks
        self._batches: deque[Batch] = deque()

    @property
    def next_after(self) -> int:
        """The next batch starts after this seq."""
        return self._batches[-1].last if self._batches else self.acked

    @property
    def has_room(self) -> bool:
        return len(self._batches) < self.limit

    @property
    def in_flight(self) -> int:
        return len(self._batches)

    def sent(self, first: int, last: int, now: float) -> None:
        """Record a published batch; raises ValueError unless it follows the previous one."""
        if not self.next_after < first <= last:
            raise ValueError(f"batch {first}..{last} does not follow seq {self.next_after}")
        self._batches.append(Batch(first, last, now))

    def acknowledge(self, upto: int) -> bool:
        """Apply HQ's ``ack``; returns whether it moved the window (stale acks do not)."""
        if upto <= self.acked:
            return False
        self.acked = upto
        self.limit = min(self.size, self.limit * 2)
        while self._batches and self._batches[0].last <= upto:
            self._batches.popleft()
        if self._batches and self._batches[0].first <= upto:
            self._batches[0] = replace(self._batches[0], first=upto + 1)
        return True

    def expired(self, now: float) -> bool:
        """Whether the oldest unacknowledged batch has waited past the timeout."""
        return bool(self._batches) and now - self._batches[0].sent_at >= self.timeout_s

    def rewind(self) -> None:
        """Forget what is in flight, so publishing resumes after the last acknowledged seq."""
        self._batches.clear()
        self.limit = 1

    def rearm(self, now: float) -> None:
        """Restart every batch's timer, e.g. after a reconnect in which paho resends them."""
        self._batches = deque(replace(batch, sent_at=now) for batch in self._batches)
