"""Turning uplink MQTT messages into what HQ stores: pure, time passed in, never raises.

``parse_events`` splits one ``.../events`` payload into a :class:`DeviceBatch` (accepted
events plus per-event dead letters) or, when the whole payload is unusable, dead letters alone.
``parse_status`` reads a retained status message. The valid rest of a batch is always kept.
Values ``data`` fields may hold (identifiers, prices, quantities, EPCs) are ``contract.values``'s.
:class:`Bounds` (``[intake]``) refuses what no real event claims: a time outside the window around
HQ's clock, a seq far beyond what the device has delivered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from common.config_web import IntakeSection
from contract.envelope import (
    CHANNEL_SOURCE,
    EDGE_SOURCE,
    MAX_EVENT_BYTES,
    EnvelopeError,
    edge_source,
    parse_time,
    validate,
)
from contract.topics import DeviceTopics, PayloadError, decode_status, parse
from hq.core.records import DeadLetter, DeviceBatch, DeviceStatus, EventRow

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
DEAD_RAW_BYTES = 16 * 1024  # how much of a refused payload or event is kept
COLUMN_FIELDS = ("session_id", "customer", "anonymous_id", "gtin")
# One encoder for every event: json.dumps with options builds a new one per call (a quarter of its cost).
compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True)
class Bounds:
    """What an event may claim at intake (``[intake]``): its time within ``max_future`` ahead of and
    ``max_age`` behind HQ's clock, its seq at most ``seq_window`` beyond the device's contiguous seq."""

    max_future: timedelta = timedelta(days=1)
    max_age: timedelta = timedelta(days=730)
    seq_window: int = 1_000_000

    @classmethod
    def of(cls, section: IntakeSection) -> Bounds:
        return cls(timedelta(seconds=section.max_future_s), timedelta(days=section.max_age_days), section.seq_window)

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """The earliest and latest event time accepted at ``now`` (clamped to what datetime holds)."""
        try:
            earliest = now - self.max_age
        except OverflowError:
            earliest = datetime.min.replace(tzinfo=timezone.utc)
        try:
            latest = now + self.max_future
        except OverflowError:
            latest = datetime.max.replace(tzinfo=timezone.utc)
        return earliest, latest

    def check_time(self, moment: datetime, now: datetime) -> None:
        """Raises EnvelopeError when ``moment`` is outside the window around ``now``."""
        earliest, latest = self.window(now)
        if moment > latest:
            raise EnvelopeError(f"time: more than {self.max_future.total_seconds():.0f} s ahead of HQ's clock")
        if moment < earliest:
            raise EnvelopeError(f"time: older than {self.max_age.days} days")


DEFAULT_BOUNDS = Bounds()
SEQ_BEYOND = "beyond the device's contiguous seq"  # in the reason of a seq refused by the window
SeqFloor = Callable[[DeviceTopics], int]  # a device's contiguous seq as HQ knows it


@dataclass(frozen=True)
class Refused:
    """A payload HQ could not read at all; its dead letters are all there is to keep."""

    dead: tuple[DeadLetter, ...]


def device_of(topic: str, kind: str) -> DeviceTopics | None:
    """The device a ``touchpoint/v1/{store}/{device}/{kind}`` topic names, or None."""
    parsed = parse(topic)
    if parsed is None or parsed.device is None or parsed.kind != kind:
        return None
    return DeviceTopics(parsed.store, parsed.device)


def _dead(topic: str, reason: str, raw: bytes, now: datetime, event: Any = None) -> DeadLetter:
    source = event.get("source") if isinstance(event, dict) else None
    event_id = event.get("id") if isinstance(event, dict) else None
    return DeadLetter(
        now,
        topic,
        reason,
        raw[:DEAD_RAW_BYTES],
        source if isinstance(source, str) else None,
        event_id[:64] if isinstance(event_id, str) else None,
    )


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def decode(payload: bytes) -> Any:
    """Strict JSON: NaN and Infinity are refused (PostgreSQL's JSONB would refuse them later)."""
    return json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)


def parse_events(
    topic: str,
    payload: bytes,
    now: datetime,
    bounds: Bounds = DEFAULT_BOUNDS,
    contiguous: SeqFloor = lambda device: 0,
) -> DeviceBatch | Refused:
    """Split one events payload; every array element ends up stored or dead-lettered. A seq more
    than ``bounds.seq_window`` beyond ``contiguous(device)`` is refused and closes no seq, so one
    bogus event cannot open a gap of 2^62."""
    device = device_of(topic, "events")
    if device is None:
        return Refused((_dead(topic, "topic: not touchpoint/v1/{store}/{device}/events", payload, now),))
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Refused((_dead(topic, f"size: payload larger than {MAX_PAYLOAD_BYTES} bytes", payload, now),))
    try:
        batch = decode(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return Refused((_dead(topic, f"json: invalid JSON ({str(error)[:120]})", payload, now),))
    if not isinstance(batch, list):
        return Refused((_dead(topic, "json: payload is not a JSON array of events", payload, now),))
    rows: list[EventRow] = []
    dead: list[DeadLetter] = []
    seqs: list[int] = []
    ceiling = _Ceiling(device, bounds.seq_window, contiguous)
    for event in batch:
        raw = compact_json(event)
        try:
            row = to_row(event, raw, device, now, bounds)
            ceiling.check(row.seq)
        except EnvelopeError as error:
            dead.append(_dead(topic, error.reason, raw.encode("utf-8", errors="replace"), now, event))
            if _accounts_for(event, device) and ceiling.allows(event["seq"]):
                seqs.append(event["seq"])
            continue
        rows.append(row)
        seqs.append(event["seq"])
    return DeviceBatch(device, now, tuple(rows), tuple(dead), tuple(seqs))


class _Ceiling:
    """The highest seq a batch may bring: the device's contiguous seq (asked once, when first
    needed) plus the window."""

    def __init__(self, device: DeviceTopics, window: int, contiguous: SeqFloor) -> None:
        self.device, self.window, self._contiguous = device, window, contiguous
        self._floor: int | None = None

    def allows(self, seq: int) -> bool:
        if self._floor is None:
            self._floor = self._contiguous(self.device)
        return seq <= self._floor + self.window

    def check(self, seq: int | None) -> None:
        if seq is not None and not self.allows(seq):
            raise EnvelopeError(f"seq: {seq} is more than {self.window} {SEQ_BEYOND} ({self._floor})")


def _accounts_for(event: Any, device: DeviceTopics) -> bool:
    """Whether a refused event still closes its seq: it names this device and a usable seq."""
    if not isinstance(event, dict) or event.get("source") != edge_source(device.store, device.device):
        return False
    seq = event.get("seq")
    return isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq < 2**63


def to_row(
    event: Any, raw: str, device: DeviceTopics | None, now: datetime, bounds: Bounds = DEFAULT_BOUNDS
) -> EventRow:
    """Validate one event (and, for MQTT, its topic's device); raises EnvelopeError with the reason."""
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:
        raise EnvelopeError("unicode: event contains an unpaired surrogate") from None
    if size > MAX_EVENT_BYTES:
        raise EnvelopeError(f"size: event larger than {MAX_EVENT_BYTES} bytes")
    if "\\u0000" in raw:
        raise EnvelopeError("unicode: event contains a NUL character")
    validate(event)
    source = event["source"]
    edge = EDGE_SOURCE.fullmatch(source)
    if device is not None and source != edge_source(device.store, device.device):
        raise EnvelopeError(f"source does not match topic: {source[:80]!r} sent on {device.events!r}")
    seq = event.get("seq")
    if seq is not None and not (isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq < 2**63):
        raise EnvelopeError("seq: must be a positive 64-bit integer")
    try:
        moment = parse_time(event["time"]).astimezone(timezone.utc)
    except OverflowError:
        raise EnvelopeError("time: out of range") from None
    bounds.check_time(moment, now)
    data = event["data"]
    columns = {name: _text(data.get(name)) for name in COLUMN_FIELDS}
    channel = "store" if edge else CHANNEL_SOURCE.fullmatch(source)["channel"]  # type: ignore[index]
    return EventRow(
        source=source,
        id=event["id"],
        type=event["type"],
        time=moment,
        seq=seq if edge else None,
        store=edge["store"] if edge else _text(data.get("store")),
        device=edge["device"] if edge else None,
        channel=channel,
        data=compact_json(data),
        received_at=now,
        **columns,
    )


def _text(value: Any) -> str | None:
    """A column value copied out of ``data``: ``validate`` let only strings (or a null GTIN) through."""
    return value if isinstance(value, str) else None


def parse_status(topic: str, payload: bytes, now: datetime) -> DeviceStatus | Refused | None:
    """A status message; None for an empty payload (a retained message being cleared)."""
    device = device_of(topic, "status")
    if device is None:
        return Refused((_dead(topic, "topic: not touchpoint/v1/{store}/{device}/status", payload, now),))
    if not payload:
        return None
    try:
        status = decode_status(payload)
        raw = json.dumps(status, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        raw.encode("utf-8")
    except PayloadError as error:
        return Refused((_dead(topic, str(error), payload, now),))
    except ValueError:
        return Refused((_dead(topic, "status: NaN, Infinity or an unpaired surrogate", payload, now),))
    if "\\u0000" in raw:
        return Refused((_dead(topic, "unicode: status contains a NUL character", payload, now),))
    backlog = status.get("backlog")
    if not (isinstance(backlog, int) and not isinstance(backlog, bool) and 0 <= backlog < 2**63):
        backlog = None
    return DeviceStatus(device, status["state"], backlog, raw, now)
