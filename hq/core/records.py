"""What HQ stores, as values: the rows, batches, outcomes and reports that cross the storage boundary.

Frozen dataclasses with no I/O, so the intake rules (``hq.core.intake``) build them and storage
(``hq.storage``) writes them without either knowing the other. Events are also placed in UTC
hours of their ``time`` (:func:`hour_of`): storage versions each hour so caches know when it changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from contract.envelope import utc_now_iso
from contract.topics import DeviceTopics


@dataclass(frozen=True)
class EventRow:
    """One accepted event as the ``events`` table holds it; ``data`` is its JSON text."""

    source: str
    id: str
    type: str
    time: datetime
    seq: int | None
    store: str | None
    device: str | None
    channel: str  # 'store' for edge events, else web/app/pos/email
    session_id: str | None
    customer: str | None
    anonymous_id: str | None
    gtin: str | None
    data: str
    received_at: datetime


def reason_kind(reason: str) -> str:
    """A refusal reason's first clause, a bounded label for metrics (``data.gtin``, ``json``)."""
    return reason.split(":", 1)[0][:60]


@dataclass(frozen=True)
class DeadLetter:
    """Something HQ refused, kept with why, where from and (truncated) what it was."""

    received_at: datetime
    topic: str
    reason: str
    raw: bytes
    source: str | None = None
    event_id: str | None = None

    @property
    def kind(self) -> str:
        return reason_kind(self.reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "received_at": utc_now_iso(self.received_at),
            "topic": self.topic,
            "reason": self.reason,
            "kind": self.kind,
            "source": self.source,
            "event_id": self.event_id,
            "raw": self.raw.decode("utf-8", errors="replace"),
        }


@dataclass(frozen=True)
class DeviceBatch:
    """One uplink message of one device, split into what to store and what to dead-letter.

    ``seqs`` are every seq the message accounts for: stored events and dead-lettered events
    that carry this device's source and a seq. Dead letters advance the ack too, or the device
    would re-send an event HQ will never accept, forever.
    """

    device: DeviceTopics
    received_at: datetime
    events: tuple[EventRow, ...] = ()
    dead: tuple[DeadLetter, ...] = ()
    seqs: tuple[int, ...] = ()


@dataclass(frozen=True)
class BatchOutcome:
    stored: int  # events new to HQ
    duplicates: int  # events HQ already held (re-sent)
    contiguous_seq: int  # after the commit: what the ack may say
    ranges: tuple[tuple[int, int], ...] = ()  # the seqs stored above contiguous_seq, lowest first
    committed_at_us: int = 0  # HQ's clock under the device's row lock: acks are ordered as commits


@dataclass(frozen=True)
class DeviceStatus:
    """A device's retained status message (the will carries only ``state``)."""

    device: DeviceTopics
    state: str
    backlog: int | None
    raw: str
    received_at: datetime


@dataclass(frozen=True)
class DeviceReport:
    """One row of ``GET /v1/devices``."""

    store: str
    device: str
    online: bool
    last_seen: datetime | None
    backlog: int
    stored: int
    contiguous_seq: int
    gaps: tuple[tuple[int, int], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "device": self.device,
            "online": self.online,
            "last_seen": utc_now_iso(self.last_seen) if self.last_seen else None,
            "backlog": self.backlog,
            "stored": self.stored,
            "contiguous_seq": self.contiguous_seq,
            "gaps": [list(gap) for gap in self.gaps],
        }


class JourneyRow(NamedTuple):
    """An event's key columns and the identifiers ingest copied out of its ``data``."""

    source: str
    id: str
    type: str
    time: datetime
    stamp: str  # ``time`` as the API writes it
    channel: str
    customer: str | None
    session_id: str | None
    anonymous_id: str | None


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)


def hour_of(moment: datetime) -> int:
    """The UTC hour ``moment`` falls in, as whole hours since 1970 (negative before); exact, unlike
    float seconds. Raises TypeError for a naive datetime."""
    return (moment - EPOCH) // HOUR


def micros(moment: datetime) -> int:
    """``moment`` as whole microseconds since 1970: how rollups keep times, exact and the same on
    both databases."""
    return (moment - EPOCH) // MICROSECOND


def hour_start(hour: int) -> datetime:
    """The first instant of an :func:`hour_of` hour, in UTC."""
    return EPOCH + hour * HOUR
