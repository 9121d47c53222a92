"""The CloudEvents envelope every touchpoint event travels in, shared by the edge and HQ.

``make_event`` builds an event the way the edge records it; ``validate`` checks one the way HQ
accepts it: CloudEvents 1.0 attributes (through the cloudevents SDK), a known ``type``, the
``data`` fields docs/architecture.md fixes for that type, and the source's shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent
from uuid6 import uuid7

from common.errors import TouchpointError
from contract import values

TYPE_PREFIX = "touchpoint."
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
MAX_EVENT_BYTES = 64 * 1024

EDGE_SOURCE = re.compile(r"/stores/(?P<store>[a-z0-9-]{1,64})/devices/(?P<device>[a-z0-9-]{1,64})")
CHANNEL_SOURCE = re.compile(r"/channels/(?P<channel>web|app|pos|email)(/[^\s]{0,200})?")

# name -> data fields that must be present (docs/architecture.md, "The event envelope").
REQUIRED_DATA: dict[str, tuple[str, ...]] = {
    "session.started": ("session_id",),
    "session.ended": ("session_id",),
    "tag.arrived": ("zone", "epc", "gtin", "rssi"),
    "tag.departed": ("zone", "epc", "gtin", "rssi", "dwell_ms"),
    "product.viewed": ("gtin", "via"),
    "size.requested": ("session_id", "gtin"),
    "size.fulfilled": ("session_id", "gtin"),
    "customer.identified": ("session_id", "customer", "method"),
    "handoff.created": ("session_id", "token", "gtins"),
    "handoff.redeemed": ("token", "anonymous_id"),
    "feedback.submitted": ("touchpoint", "scale", "score"),
    "wishlist.added": ("gtin",),
    "cart.added": ("gtin",),
    "purchase.completed": ("order_id", "items"),
    "page.viewed": ("anonymous_id",),
    "customer.logged_in": ("anonymous_id", "customer"),
    "custom.tracked": ("event",),
}
EVENT_NAMES = frozenset(REQUIRED_DATA)
EDGE_EVENT_NAMES = frozenset(
    {
        "session.started",
        "session.ended",
        "tag.arrived",
        "tag.departed",
        "product.viewed",
        "size.requested",
        "size.fulfilled",
        "customer.identified",
        "handoff.created",
        "feedback.submitted",
    }
)
VIA = frozenset({"tag", "search", "recommendation", "browse"})
IDENTIFY_METHODS = frozenset({"qr", "app", "login"})
FEEDBACK_SCALES = {"nps": range(0, 11), "csat": range(1, 6)}


class EnvelopeError(TouchpointError, ValueError):
    """An event does not satisfy the envelope contract; ``reason`` says which rule it broke."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def utc_now_iso(now: datetime | None = None) -> str:
    """RFC 3339 UTC with milliseconds, as every ``time`` attribute is written. Four-digit years
    always (``strftime("%Y")`` writes year 1 as ``1``, which no RFC 3339 reader takes)."""
    m = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    date = f"{m.year:04d}-{m.month:02d}-{m.day:02d}"
    return f"{date}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond // 1000:03d}Z"


def edge_source(store_id: str, device_id: str) -> str:
    return f"/stores/{store_id}/devices/{device_id}"


def make_event(
    name: str,
    data: Mapping[str, Any],
    *,
    source: str,
    seq: int | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """A new event of type ``touchpoint.{name}``; raises EnvelopeError if ``data`` is incomplete."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid7()),
        "source": source,
        "type": TYPE_PREFIX + name,
        "time": utc_now_iso(time),
        "datacontenttype": "application/json",
    }
    if seq is not None:
        event["seq"] = seq
    event["data"] = dict(data)
    check_data(name, event["data"])
    return event


def event_name(event: Mapping[str, Any]) -> str:
    """``touchpoint.tag.arrived`` -> ``tag.arrived``."""
    return str(event.get("type", ""))[len(TYPE_PREFIX) :]


def parse_time(value: Any) -> datetime:
    """Parse an RFC 3339 ``time``; raises EnvelopeError when it is not one."""
    if not isinstance(value, str):
        raise EnvelopeError("time: must be an RFC 3339 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError(f"time: {value[:40]!r} is not RFC 3339") from None
    if moment.tzinfo is None:
        raise EnvelopeError("time: must carry a UTC offset")
    return moment


def validate(event: Any) -> dict[str, Any]:
    """Check one received event; returns it unchanged or raises EnvelopeError with the reason."""
    if not isinstance(event, dict):
        raise EnvelopeError("event: must be a JSON object")
    for required in ("id", "source", "type", "time"):
        # The SDK would invent a missing id or time; a received event must bring its own.
        if not isinstance(event.get(required), str) or not event[required]:
            raise EnvelopeError(f"{required}: missing or not a non-empty string")
    parse_time(event["time"])
    if event.get("specversion") != "1.0":
        raise EnvelopeError(f"specversion: {event.get('specversion')!r} is not '1.0'")
    objection = cloudevents_objection(event)
    if objection is not None:
        raise EnvelopeError(f"cloudevents: {objection}")
    if len(event["id"]) > 64:
        raise EnvelopeError("id: longer than 64 characters")
    name = event_name(event)
    if not event["type"].startswith(TYPE_PREFIX) or name not in EVENT_NAMES:
        raise EnvelopeError(f"type: {event['type'][:80]!r} is not a touchpoint event type")
    source = event["source"]
    if EDGE_SOURCE.fullmatch(source):
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise EnvelopeError("seq: edge events need a positive integer seq")
    elif not CHANNEL_SOURCE.fullmatch(source):
        raise EnvelopeError(f"source: {source[:80]!r} is neither /stores/S/devices/D nor /channels/C")
    data = event.get("data")
    if not isinstance(data, dict):
        raise EnvelopeError("data: must be a JSON object")
    check_data(name, data)
    return event


# What the SDK's checks of attributes that validate() has already vetted may see in their place.
_VETTED = {"specversion": "1.0", "time": datetime(2000, 1, 1, tzinfo=timezone.utc)}
_SDK_TEXT = frozenset({"subject", "datacontenttype", "dataschema"})
_PAYLOAD = frozenset({"data", "data_base64"})  # members that are not attributes


def cloudevents_objection(event: Mapping[str, Any]) -> str | None:
    """The cloudevents SDK's objection to an event's attributes, or None; asked once per shape.

    Called once validate's own checks passed (id, source, type non-empty strings, specversion
    1.0, time RFC 3339 with an offset). From there the SDK's verdict depends only on the
    attribute names and on whether subject, datacontenttype and dataschema are non-empty
    strings, and its messages name no values: so a stand-in of the same shape gets the same
    answer, and HQ builds one SDK event per shape instead of one per event (which cost about
    4 us, as much as the rest of validate).
    """
    return _objection_to_shape(
        tuple(
            (name, (isinstance(value, str), bool(value)) if name in _SDK_TEXT else None)
            for name, value in event.items()
            if name not in _PAYLOAD
        )
    )


@lru_cache(maxsize=1024)
def _objection_to_shape(shape: tuple[tuple[str, tuple[bool, bool] | None], ...]) -> str | None:
    try:
        CloudEvent({name: _stand_in(name, kind) for name, kind in shape})
    except BaseCloudEventException as error:
        return str(error)
    return None


def _stand_in(name: str, kind: tuple[bool, bool] | None) -> Any:
    """A value of the same shape as the one the SDK would see: (is text, non-empty) or vetted."""
    if kind is None:
        return _VETTED.get(name, "x")
    is_text, non_empty = kind
    if not is_text:
        return int(non_empty)
    return "x" if non_empty else ""


def check_data(name: str, data: Mapping[str, Any]) -> None:
    """The per-type rules on ``data``; raises EnvelopeError naming the first broken one."""
    if name not in REQUIRED_DATA:
        raise EnvelopeError(f"type: unknown event name {name!r}")
    missing = [key for key in REQUIRED_DATA[name] if key not in data]
    if missing:
        raise EnvelopeError(f"data.{missing[0]}: required for {name}")
    objection = values.objection(data)
    if objection is not None:
        raise EnvelopeError(objection)
    # Membership tests on sets raise TypeError for unhashable values (a list, an object): text first.
    if name == "product.viewed" and not (isinstance(data["via"], str) and data["via"] in VIA):
        raise EnvelopeError(f"data.via: {data['via']!r} is not one of {sorted(VIA)}")
    if name == "customer.identified" and not (isinstance(data["method"], str) and data["method"] in IDENTIFY_METHODS):
        raise EnvelopeError(f"data.method: {data['method']!r} is not one of {sorted(IDENTIFY_METHODS)}")
    if name == "feedback.submitted":
        scale = FEEDBACK_SCALES.get(data["scale"]) if isinstance(data["scale"], str) else None
        if scale is None:
            raise EnvelopeError(f"data.scale: {data['scale']!r} is not nps or csat")
        score = data["score"]
        if not isinstance(score, int) or isinstance(score, bool) or score not in scale:
            raise EnvelopeError(f"data.score: {score!r} is out of range for {data['scale']}")
        if "session_id" not in data and "anonymous_id" not in data:
            raise EnvelopeError("data.session_id: feedback needs session_id or anonymous_id")
