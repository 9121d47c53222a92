"""Touchpoints: where an event happened, which journey phase that is, and where it lies around a purchase.

A touchpoint is ``(channel, place, kind)``, written ``channel/place/kind``:

- edge events: ``store/<store>/<kind>``, the kind from the device id (an explicit mapping first,
  then the prefixes ``mirror-`` and ``kiosk-``, else ``device``), e.g. ``store/berlin-01/mirror``;
- POS events: ``store/<data.store>/pos`` (``store/unknown/pos`` when the till sent no store);
- web and app events: ``<channel>/<page>/page``, the page from ``page.viewed``'s ``page`` field
  (``product``, ``home``, ...), and for other events from their name (``cart.added`` is ``cart``,
  ``purchase.completed`` is ``checkout``, ``handoff.redeemed`` is ``handoff``, ``product.viewed`` is
  ``product``);
- email events: ``email/<data.campaign or newsletter>/email``;
- a shop's own events (``custom.tracked``, a Segment ``track`` of no spec'd name):
  ``<channel>/<the event name as a place>/event``, e.g. ``web/newsletter-signed-up/event``.

``customer.logged_in`` is identity evidence, not a touch, and has no touchpoint.

Each touchpoint maps to one phase of ``PHASES`` by the first matching rule of ``phase_rules``
(patterns ``channel/place/kind`` with ``*`` for any part); overrides go before the defaults.
Relative to a person's purchases an event is ``at`` (the purchase itself), ``before`` (a purchase
of theirs follows, at the same time or later), ``after`` (their purchases all lie earlier) or None
(they never bought).
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from common.errors import ConfigError
from contract.envelope import CHANNEL_SOURCE, EDGE_SOURCE, event_name, parse_time

PHASES = ("awareness", "consideration", "purchase", "service", "loyalty")
PLACE = re.compile(r"[a-z0-9-]{1,64}")
PATTERN = re.compile(r"(\*|[a-z0-9-]{1,64})/(\*|[a-z0-9-]{1,64})/(\*|[a-z0-9-]{1,64})")

DEFAULT_PREFIXES = (("mirror-", "mirror"), ("kiosk-", "kiosk"))
DEFAULT_PHASE_RULES = (
    ("*/*/pos", "purchase"),
    ("*/checkout/*", "purchase"),
    ("*/*/email", "awareness"),
    ("*/home/*", "awareness"),
    ("*/landing/*", "awareness"),
    ("*/search/*", "awareness"),
    ("*/account/*", "service"),
    ("*/order-status/*", "service"),
    ("*/returns/*", "service"),
    ("*/help/*", "service"),
    ("*/loyalty/*", "loyalty"),
    ("*/rewards/*", "loyalty"),
    ("*/*/*", "consideration"),
)
DIGITAL_PLACES = {
    "product.viewed": "product",
    "cart.added": "cart",
    "wishlist.added": "wishlist",
    "purchase.completed": "checkout",
    "handoff.redeemed": "handoff",
    "feedback.submitted": "feedback",
}


class Touchpoint(NamedTuple):
    """One place a shopper meets the retailer. A named tuple: reports hash and sort hundreds of
    thousands of them, and a tuple does that in C."""

    channel: str
    place: str
    kind: str

    def __str__(self) -> str:
        return f"{self.channel}/{self.place}/{self.kind}"

    @classmethod
    def parse(cls, text: str) -> Touchpoint:
        """``store/berlin-01/mirror`` -> Touchpoint; raises ValueError on another shape."""
        parts = text.split("/")
        if len(parts) != 3 or not all(PLACE.fullmatch(p) for p in parts):
            raise ValueError(f"touchpoint {text[:80]!r} is not channel/place/kind")
        return cls(*parts)


@dataclass(frozen=True)
class TouchpointMap:
    """How events become touchpoints and touchpoints phases; defaults plus site overrides."""

    devices: tuple[tuple[str, str], ...] = ()  # device id -> kind, before the prefixes
    prefixes: tuple[tuple[str, str], ...] = DEFAULT_PREFIXES
    phase_rules: tuple[tuple[str, str], ...] = DEFAULT_PHASE_RULES
    _device_kinds: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_device_kinds", dict(self.devices))

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> TouchpointMap:
        """``{"devices": {"cab-7": "mirror"}, "phases": {"web/outlet/*": "awareness"}}`` over the
        defaults; raises ConfigError naming the bad key."""
        unknown = set(table) - {"devices", "phases"}
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(f"touchpoints.{key}", table[key], "keys devices, phases")
        devices = dict(table.get("devices", {}))
        for device, kind in devices.items():
            if not PLACE.fullmatch(str(device)) or not PLACE.fullmatch(str(kind)):
                raise ConfigError(f"touchpoints.devices.{device}", kind, "a kind of 1 to 64 of a-z, 0-9, '-'")
        rules = dict(table.get("phases", {}))
        for pattern, phase in rules.items():
            if not PATTERN.fullmatch(str(pattern)):
                raise ConfigError(f"touchpoints.phases.{pattern}", phase, "a key channel/place/kind, '*' for any")
            if phase not in PHASES:
                raise ConfigError(f"touchpoints.phases.{pattern}", phase, "one of " + ", ".join(PHASES))
        return cls(devices=tuple(devices.items()), phase_rules=(*rules.items(), *DEFAULT_PHASE_RULES))

    def device_kind(self, device: str) -> str:
        kind = self._device_kinds.get(device)
        if kind is not None:
            return kind
        return _prefix_kind(self.prefixes, device)

    def phase(self, touchpoint: Touchpoint) -> str:
        """The journey phase of a touchpoint: the first matching rule's."""
        return _phase(self.phase_rules, touchpoint)


@functools.lru_cache(maxsize=65536)
def _prefix_kind(prefixes: tuple[tuple[str, str], ...], device: str) -> str:
    """Cached: every event of a device asks again (a few hundred devices, a million events)."""
    return next((k for prefix, k in prefixes if device.startswith(prefix)), "device")


@functools.lru_cache(maxsize=65536)
def _phase(rules: tuple[tuple[str, str], ...], touchpoint: Touchpoint) -> str:
    parts = (touchpoint.channel, touchpoint.place, touchpoint.kind)
    for pattern, phase in rules:
        if all(p in ("*", v) for p, v in zip(pattern.split("/"), parts)):
            return phase
    return "consideration"


def _place(value: Any, default: str) -> str:
    return value if isinstance(value, str) and PLACE.fullmatch(value) else default


def touchpoint_of(event: Mapping[str, Any], tmap: TouchpointMap) -> Touchpoint | None:
    """Where an event happened; None for identity-only events and unknown sources."""
    source = str(event.get("source", ""))
    data = event.get("data") or {}
    edge = EDGE_SOURCE.fullmatch(source)
    if edge:
        return Touchpoint("store", edge["store"], tmap.device_kind(edge["device"]))
    channel_match = CHANNEL_SOURCE.fullmatch(source)
    if not channel_match:
        return None
    channel, name = channel_match["channel"], event_name(event)
    if channel == "pos":
        return Touchpoint("store", _place(data.get("store"), "unknown"), "pos")
    if channel == "email":
        return Touchpoint("email", _place(data.get("campaign"), "newsletter"), "email")
    if name == "customer.logged_in":
        return None
    if name == "page.viewed":
        return Touchpoint(channel, _place(data.get("page"), "page"), "page")
    if name == "custom.tracked":
        return Touchpoint(channel, slug(str(data.get("event", ""))) or "custom", "event")
    return Touchpoint(channel, DIGITAL_PLACES.get(name, "page"), "page")


def slug(text: str) -> str:
    """A name as a place: ``Newsletter Signed Up`` -> ``newsletter-signed-up`` (empty if nothing is left)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64].strip("-")


def store_of(event: Mapping[str, Any]) -> str | None:
    """The store an event happened in: its edge source's, or a POS event's ``data.store``."""
    edge = EDGE_SOURCE.fullmatch(str(event.get("source", "")))
    if edge:
        return edge["store"]
    store = (event.get("data") or {}).get("store")
    return store if isinstance(store, str) and PLACE.fullmatch(store) else None


def purchased_gtins(data: Mapping[str, Any]) -> list[str]:
    """The GTINs of a ``purchase.completed``'s items, skipping malformed items."""
    items = data.get("items")
    if not isinstance(items, list):
        return []
    return [i["gtin"] for i in items if isinstance(i, dict) and isinstance(i.get("gtin"), str)]


def purchase_position(time: datetime, purchases: Sequence[datetime], is_purchase: bool) -> str | None:
    """``at``, ``before``, ``after`` or None, given the person's sorted purchase times."""
    if is_purchase:
        return "at"
    if not purchases:
        return None
    return "before" if bisect.bisect_left(purchases, time) < len(purchases) else "after"


@dataclass(frozen=True)
class Step:
    """One event of a journey, placed: what the journey endpoint returns per event."""

    time: datetime
    event_id: str
    name: str
    touchpoint: Touchpoint | None
    phase: str | None
    position: str | None


def place(event: Mapping[str, Any], time: datetime, purchases: Sequence[datetime], tmap: TouchpointMap) -> Step:
    """One event as a journey step at ``time``, given its person's sorted purchase times."""
    point = touchpoint_of(event, tmap)
    name = event_name(event)
    return Step(
        time,
        str(event["id"]),
        name,
        point,
        tmap.phase(point) if point else None,
        purchase_position(time, purchases, name == "purchase.completed"),
    )


def journey(events: Iterable[Mapping[str, Any]], tmap: TouchpointMap) -> list[Step]:
    """One person's events as steps in time order (ties by id), each with phase and position."""
    timed = sorted(((parse_time(e["time"]), str(e["id"]), e) for e in events), key=lambda t: t[:2])
    purchases = [t for t, _, e in timed if event_name(e) == "purchase.completed"]
    return [place(event, time, purchases, tmap) for time, _, event in timed]


__all__ = [
    "PHASES",
    "Step",
    "Touchpoint",
    "TouchpointMap",
    "journey",
    "place",
    "purchase_position",
    "purchased_gtins",
    "slug",
    "store_of",
    "touchpoint_of",
]
