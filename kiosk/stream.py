"""In-process publish/subscribe for server-sent events.

The reader thread publishes and must never wait for a browser, so every client has its own
bounded queue; a client whose queue is full is dropped (its browser reconnects and catches up from
the replay buffer). Event ids increase by one per hub, so ``Last-Event-ID`` resumes a stream.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CLIENT_QUEUE = 256
REPLAY = 256
HEARTBEAT_S = 15.0
RETRY_MS = 2000


@dataclass(frozen=True)
class Message:
    id: int
    event: str
    data: dict[str, Any]

    def encode(self) -> str:
        """The SSE wire form: id, event name, one data line of JSON, blank line."""
        body = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        return f"id: {self.id}\nevent: {self.event}\ndata: {body}\n\n"


_CLOSED = Message(0, "", {})  # put in a queue to end its stream


class Subscription:
    """One client's queue; ``dropped`` is set when it fell too far behind."""

    def __init__(self, size: int) -> None:
        self.queue: queue.Queue[Message] = queue.Queue(size)
        self.dropped = False


class Hub:
    """Fan messages out to subscribers without ever blocking the publisher."""

    def __init__(self, client_queue: int = CLIENT_QUEUE, replay: int = REPLAY) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._subscribers: set[Subscription] = set()
        self._recent: deque[Message] = deque(maxlen=replay)
        self._client_queue = client_queue
        self.published = 0
        self.dropped_clients = 0
        self.refused_clients = 0  # turned away at the limit
        self.closed = False

    def publish(self, event: str, data: dict[str, Any]) -> Message:
        with self._lock:
            message = Message(next(self._ids), event, data)
            self._recent.append(message)
            self.published += 1
            for sub in list(self._subscribers):
                try:
                    sub.queue.put_nowait(message)
                except queue.Full:
                    self._drop(sub)
        return message

    def subscribe(self, last_event_id: int | None = None, limit: int | None = None) -> Subscription | None:
        """A new client; with ``last_event_id`` it first receives what it missed (if still kept).
        None when ``limit`` clients are subscribed already (each holds a server thread)."""
        sub = Subscription(self._client_queue)
        with self._lock:
            if limit is not None and len(self._subscribers) >= limit and not self.closed:
                self.refused_clients += 1
                return None
            if last_event_id is not None:
                for message in self._recent:
                    if message.id > last_event_id and not sub.queue.full():
                        sub.queue.put_nowait(message)
            if self.closed:
                sub.queue.put_nowait(_CLOSED)
            else:
                self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def _drop(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        sub.dropped = True
        self.dropped_clients += 1
        while True:  # make room for the end marker
            try:
                sub.queue.get_nowait()
            except queue.Empty:
                break
        sub.queue.put_nowait(_CLOSED)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every open stream (shutdown)."""
        with self._lock:
            self.closed = True
            for sub in self._subscribers:
                try:
                    sub.queue.put_nowait(_CLOSED)
                except queue.Full:
                    sub.queue.get_nowait()
                    sub.queue.put_nowait(_CLOSED)
            self._subscribers.clear()

    def stream(self, sub: Subscription, heartbeat_s: float = HEARTBEAT_S) -> Iterator[str]:
        """The SSE text for one client until it is dropped or the hub closes."""
        try:
            yield f"retry: {RETRY_MS}\n\n"
            while True:
                try:
                    message = sub.queue.get(timeout=heartbeat_s)
                except queue.Empty:
                    yield ": heartbeat\n\n"
                    continue
                if message is _CLOSED:
                    return
                yield message.encode()
        finally:
            self.unsubscribe(sub)
