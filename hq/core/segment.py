"""The Segment HTTP Tracking API as touchpoint CloudEvents: pure, time passed in.

Shops already send with Segment's libraries (analytics.js, analytics-python, the mobile SDKs) or
RudderStack's, which speak the same spec; ``hq.web.segment_api`` takes their requests and this
module turns each message into the events ``POST /v1/events`` would have been sent, so both
share one intake (validation, idempotent storage, dead letters, identity upkeep):

- ``identify`` and ``alias`` link ``anonymousId`` (``previousId``) and ``userId`` as
  ``customer.logged_in``; traits are stored only for keys in ``SegmentRules.traits``;
- ``page`` and ``screen`` are ``page.viewed`` (name, path, URL, title, referrer); a ``page``
  whose URL starts with the hand-off prefix and a token also redeems that hand-off
  (``handoff.redeemed`` for the page's ``anonymousId``);
- ``track`` of the e-commerce spec's events becomes product views, cart and wishlist adds, page
  views of search, lists, cart and checkout, and purchases (``hq.core.segment_commerce``); every
  other ``track``, and ``group``, is a ``custom.tracked`` touchpoint named by its event.

The event's ``id`` is the ``messageId`` (a digest of the message when it has none), its source
``/channels/{channel}/segment``, so a retried message is stored once. Its ``time`` is the spec's
skew-corrected timestamp: ``receivedAt - (sentAt - originalTimestamp)`` where the client's own
time (``originalTimestamp``, else ``timestamp``) and ``sentAt`` are both given, the client's time
where only it is, else the receive time. ``context`` is never copied, so the IP address and the
user agent are not stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from contract.envelope import TYPE_PREFIX, EnvelopeError, utc_now_iso
from hq.core.intake import compact_json
from hq.core.segment_commerce import commerce_event
from hq.core.touchpoints import slug

MAX_BATCH_BYTES = 500 * 1024
MAX_MESSAGE_BYTES = 32 * 1024
MAX_ID_LENGTH = 64
TYPES = ("track", "identify", "page", "screen", "alias", "group")
# analytics.js posts each call to the first letter of its type, a batch to /b.
SHORT_PATHS = {"t": "track", "i": "identify", "p": "page", "s": "screen", "a": "alias", "g": "group", "b": "batch"}
# Every path the Segment API is posted to: they take intake-sized bodies (hq.web.events_api.route_limit).
PATHS = frozenset(f"/v1/{call}" for call in (*TYPES, "batch", *SHORT_PATHS))
PAGE_FIELDS = ("name", "path", "url", "title", "referrer", "search")


class SegmentRequestError(ValueError):
    """A request the spec answers with 400: not JSON, not the call's shape, or over a size limit."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class SegmentRules:
    """What a write key and HQ's config decide: the channel, the hand-off prefix, kept trait keys."""

    channel: str
    handoff_url: str = ""  # empty: pages never redeem hand-offs
    traits: frozenset[str] = frozenset()


def messages_of(document: Any, call: str) -> tuple[list[Any], Any]:
    """The messages of one request body and the batch's ``sentAt``; raises SegmentRequestError."""
    if not isinstance(document, dict):
        raise SegmentRequestError("json: the body must be a JSON object")
    if call != "batch":
        return [{"type": call, **document}], None
    batch = document.get("batch")
    if not isinstance(batch, list):
        raise SegmentRequestError("batch: must be an array of messages")
    for index, message in enumerate(batch):
        if len(compact_json(message).encode("utf-8", errors="replace")) > MAX_MESSAGE_BYTES:
            raise SegmentRequestError(f"batch[{index}]: message larger than {MAX_MESSAGE_BYTES} bytes")
    return batch, document.get("sentAt")


def to_events(message: Any, rules: SegmentRules, received: datetime, sent_at: Any = None) -> list[dict[str, Any]]:
    """The CloudEvents one Segment message stands for; raises EnvelopeError with the reason it is refused."""
    if not isinstance(message, dict):
        raise EnvelopeError("message: must be a JSON object")
    kind = message.get("type")
    if kind not in TYPES:
        raise EnvelopeError(f"type: {str(kind)[:40]!r} is not one of {', '.join(TYPES)}")
    user = _identifier(message.get("userId"))
    anonymous = _identifier(message.get("anonymousId"))
    if kind != "alias" and user is None and anonymous is None:
        raise EnvelopeError("userId: a message needs a userId or an anonymousId")
    event_id = message_id(message)
    time = utc_now_iso(event_time(message, received, sent_at))
    people = {"anonymous_id": anonymous, "customer": user}

    def event(name: str, data: Mapping[str, Any], suffix: str = "") -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": _derived(event_id, suffix) if suffix else event_id,
            "source": f"/channels/{rules.channel}/segment",
            "type": TYPE_PREFIX + name,
            "time": time,
            "datacontenttype": "application/json",
            # anonymous_id stays even when null: page.viewed requires the key, and a userId may stand alone.
            "data": {key: value for key, value in data.items() if value is not None or key == "anonymous_id"},
        }

    if kind == "identify":
        if user is None:
            raise EnvelopeError("userId: identify without userId links nothing")
        return [event("customer.logged_in", {**people, "traits": _kept(message.get("traits"), rules.traits)})]
    if kind == "alias":
        previous = _identifier(message.get("previousId"))
        if user is None or previous is None:
            raise EnvelopeError("previousId: alias needs previousId and userId")
        return [event("customer.logged_in", {"anonymous_id": previous, "customer": user, "via": "alias"})]
    if kind == "group":
        group = {"event": "Group", "group_id": _identifier(message.get("groupId"))}
        return [event("custom.tracked", {**people, **group, "traits": _kept(message.get("traits"), rules.traits)})]
    if kind in ("page", "screen"):
        view = {**people, **page_fields(message)}
        events = [event("page.viewed", view)]
        token = handoff_token(view.get("url"), rules.handoff_url) if kind == "page" else None
        if token is not None and anonymous is not None:
            events.append(event("handoff.redeemed", {"token": token, **people}, "handoff"))
        return events
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        raise EnvelopeError("event: track needs an event name")
    properties = message.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    found = commerce_event(name, properties, event_id)
    if found is not None:
        return [event(found[0], {**people, "event": name, **found[1]})]
    return [event("custom.tracked", {**people, "event": name[:200], "properties": properties or None})]


def message_id(message: Mapping[str, Any]) -> str:
    """The event id: the ``messageId``, else a digest of the message (a retry of it is the same)."""
    given = message.get("messageId")
    if isinstance(given, (str, int)) and not isinstance(given, bool) and str(given):
        if len(str(given)) > MAX_ID_LENGTH:
            raise EnvelopeError(f"messageId: longer than {MAX_ID_LENGTH} characters")
        return str(given)
    return "seg-" + hashlib.sha256(compact_json(message).encode("utf-8", errors="replace")).hexdigest()[:40]


def _derived(event_id: str, suffix: str) -> str:
    """A second event's id from one message: stable, so a retry stores it once too."""
    return f"{suffix}-" + hashlib.sha256(f"{suffix}:{event_id}".encode()).hexdigest()[:40]


def event_time(message: Mapping[str, Any], received: datetime, batch_sent_at: Any = None) -> datetime:
    """The spec's timestamp: the client's time corrected by its clock's skew, never after receipt."""
    client = _moment(message.get("originalTimestamp"), "originalTimestamp") or _moment(
        message.get("timestamp"), "timestamp"
    )
    if client is None:
        return received
    sent = _moment(message.get("sentAt"), "sentAt") or _moment(batch_sent_at, "sentAt")
    moment = received - (sent - client) if sent is not None else client
    return min(moment, received)


def _moment(value: Any, name: str) -> datetime | None:
    """An ISO-8601 time (UTC when it names no offset), None when absent; raises EnvelopeError."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnvelopeError(f"{name}: must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise EnvelopeError(f"{name}: {value[:40]!r} is not ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise EnvelopeError(f"{name}: out of range") from None


def page_fields(message: Mapping[str, Any]) -> dict[str, Any]:
    """Name, place and the page's own fields, from ``properties`` first, then ``context.page``."""
    properties = _object(message.get("properties"))
    page = _object(_object(message.get("context")).get("page"))
    fields: dict[str, Any] = {}
    for key in PAGE_FIELDS:
        value = properties.get(key, page.get(key))
        if isinstance(value, str) and value:
            fields[key] = value[:2000]
    name = message.get("name") if isinstance(message.get("name"), str) else None
    category = message.get("category") if isinstance(message.get("category"), str) else None
    if name or category:
        fields["name"] = name or category
        fields["page"] = slug(name or category or "")
    return fields


def handoff_token(url: Any, prefix: str) -> str | None:
    """The token of a hand-off URL (``prefix`` + token, maybe a query or fragment after it), else None."""
    if not prefix or not isinstance(url, str) or not url.startswith(prefix):
        return None
    token = url[len(prefix) :].split("?", 1)[0].split("#", 1)[0].strip("/")
    return token if token and "/" not in token and len(token) <= MAX_ID_LENGTH else None


def _identifier(value: Any) -> str | None:
    """A user or anonymous id as text: strings and integers, as the libraries stringify them."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)) and str(value).strip():
        return str(value)[:256]
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _kept(traits: Any, allowed: frozenset[str]) -> dict[str, Any] | None:
    """Only the allow-listed traits: the rest (e-mail, name, address) is never stored."""
    if not isinstance(traits, dict):
        return None
    kept = {key: value for key, value in traits.items() if key in allowed}
    return kept or None
