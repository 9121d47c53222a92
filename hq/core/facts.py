"""What a span of events says about touchpoints, before identity is applied: mergeable partial state.

Touchpoint metrics (``hq.core.report``) are computed in two steps so that HQ can cache the
expensive one. :class:`Facts` reads events once and keeps, per span, only what the metrics need:
session fragments, dwell times, ratings, size requests and fulfilments, purchases. Every event is
filed under its *attribution identifier* (``customer:…``, ``session:…`` or ``anon:…``,
``hq.core.identity.attribution_identifier``), not under a person: persons are looked up only when a
report combines facts, so a late identity link never invalidates them, and facts of different
spans (HQ keeps one per UTC hour) combine into the facts of their union.

Facts are frozen once built (``freeze``: their session parts become tuples) and never changed;
``combined`` shares their parts and copies only the sessions it merges.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, TypeVar

from contract.envelope import event_name
from hq.core.identity import StitchPolicy, attribution_identifier
from hq.core.records import hour_of
from hq.core.touchpoints import Touchpoint, TouchpointMap, purchased_gtins, store_of, touchpoint_of

# The only events a report uses from after its window (up to the conversion window later): the
# purchases that convert its sessions and the fulfilments that answer its size requests.
AFTER_WINDOW = frozenset({"purchase.completed", "size.fulfilled"})
SEEN_ONE = frozenset(
    {"tag.arrived", "tag.departed", "product.viewed", "size.requested", "page.viewed", "wishlist.added", "cart.added"}
)


def seen_gtins(name: str, data: Mapping[str, Any]) -> list[str]:
    """The GTINs an event shows the shopper (none for purchases: buying is not seeing)."""
    if name == "handoff.created":
        gtins = data.get("gtins")
        return [g for g in gtins if isinstance(g, str)] if isinstance(gtins, list) else []
    gtin = data.get("gtin") if name in SEEN_ONE else None
    return [gtin] if isinstance(gtin, str) else []


class FrozenPart(NamedTuple):
    """A finished session part: a tuple of strings and times, which the garbage collector stops
    scanning, so a month of cached parts costs no collection time."""

    touchpoint: Touchpoint
    store: str | None
    start: datetime
    end: datetime
    seen: tuple[str, ...]
    idents: tuple[str, ...]
    ended: tuple[datetime, float] | None  # the latest session.ended: (time, seconds)


class SessionPart:
    """The events of one session within one span, while they are being added or merged."""

    __slots__ = ("touchpoint", "store", "start", "end", "seen", "idents", "ended")

    def __init__(self, touchpoint: Touchpoint, store: str | None, time: datetime) -> None:
        self.touchpoint = touchpoint
        self.store = store
        self.start = self.end = time
        self.seen: set[str] = set()
        self.idents: set[str] = set()
        self.ended: tuple[datetime, float] | None = None

    @classmethod
    def copy_of(cls, part: Part) -> SessionPart:
        twin = cls(part.touchpoint, part.store, part.start)
        twin.end, twin.seen, twin.idents, twin.ended = part.end, set(part.seen), set(part.idents), part.ended
        return twin

    def absorb(self, other: Part) -> None:
        """Add another part of the same session (from another span)."""
        self.start, self.end = min(self.start, other.start), max(self.end, other.end)
        self.seen.update(other.seen)
        self.idents.update(other.idents)
        if other.ended is not None and (self.ended is None or other.ended > self.ended):
            self.ended = other.ended

    def freeze(self) -> FrozenPart:
        return FrozenPart(
            self.touchpoint,
            self.store,
            self.start,
            self.end,
            tuple(sorted(self.seen)),
            tuple(sorted(self.idents)),
            self.ended,
        )


Part = SessionPart | FrozenPart

# A digital visit, at its touchpoint: one UTC day, one visitor. The visitor is the person of
# ``ident`` when the event has one, else ``fallback`` (its raw anonymous id, else its event id).
VisitKey = tuple[date, str | None, str]
EdgeKey = tuple[str, str]  # an edge session, at its device's touchpoint: (source, session_id)
K = TypeVar("K", EdgeKey, VisitKey)


@dataclass
class Facts:
    """Identity-free partial state of some events; ``add`` each, in any order.

    Session parts are filed by touchpoint first (a session never changes touchpoint): a report
    takes a touchpoint's sessions whole, without hashing a touchpoint per session."""

    tmap: TouchpointMap = field(default_factory=TouchpointMap)
    edge: dict[Touchpoint, dict[EdgeKey, Part]] = field(default_factory=dict)
    visits: dict[Touchpoint, dict[VisitKey, Part]] = field(default_factory=dict)
    dwell: dict[Touchpoint, list[float]] = field(default_factory=dict)
    ratings: dict[tuple[Touchpoint, str], list[int]] = field(default_factory=dict)
    requested: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (store, request_id): first
    fulfilled: dict[tuple[str, str], datetime] = field(default_factory=dict)
    purchases: list[tuple[str, datetime, frozenset[str]]] = field(default_factory=list)  # (ident, time, gtins)
    pos: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)  # (store, gtin): purchase times
    events: int = 0

    def add(self, event: Mapping[str, Any], ident: str | None, time: datetime) -> None:
        """File one event, given its attribution identifier (None: nobody knowable) and time."""
        self.events += 1
        name = event_name(event)
        data = event.get("data") or {}
        store = store_of(event)
        if name == "purchase.completed":
            self._add_purchase(ident, store, time, data)
        point = touchpoint_of(event, self.tmap)
        if point is None:
            return
        if name in ("size.requested", "size.fulfilled") and store and isinstance(data.get("request_id"), str):
            found = self.requested if name == "size.requested" else self.fulfilled
            key = (store, data["request_id"])
            found[key] = min(time, found.get(key, time))
        if name == "feedback.submitted":
            self._add_rating(point, data)
        part = self._part(event, ident, point, store, time, data)
        part.start, part.end = min(part.start, time), max(part.end, time)
        part.seen.update(seen_gtins(name, data))
        if name == "session.ended" and _number(data.get("duration_ms")):
            ended = (time, data["duration_ms"] / 1000)
            if part.ended is None or ended > part.ended:
                part.ended = ended
        if name == "tag.departed" and _number(data.get("dwell_ms")):
            self.dwell.setdefault(point, []).append(data["dwell_ms"] / 1000)

    def freeze(self) -> Facts:
        """Done adding: parts become tuples (see FrozenPart); returns itself."""
        self.edge = {point: _frozen(parts) for point, parts in self.edge.items()}
        self.visits = {point: _frozen(parts) for point, parts in self.visits.items()}
        return self

    def _part(
        self,
        event: Mapping[str, Any],
        ident: str | None,
        point: Touchpoint,
        store: str | None,
        time: datetime,
        data: Mapping[str, Any],
    ) -> SessionPart:
        if "session_id" in data and event["source"].startswith("/stores/"):  # an edge event: it has a point
            edge_key = (str(event["source"]), str(data["session_id"]))
            part = _open_part(self.edge.setdefault(point, {}), edge_key, point, store, time)
        else:
            fallback = "" if ident is not None else str(data.get("anonymous_id") or event["id"])
            part = _open_part(self.visits.setdefault(point, {}), (time.date(), ident, fallback), point, store, time)
        if ident is not None:
            part.idents.add(ident)
        return part

    def _add_purchase(self, ident: str | None, store: str | None, time: datetime, data: Mapping[str, Any]) -> None:
        gtins = frozenset(purchased_gtins(data))
        if ident is not None:
            self.purchases.append((ident, time, gtins))
        if store is not None:
            for gtin in gtins:
                self.pos.setdefault((store, gtin), []).append(time)

    def _add_rating(self, point: Touchpoint, data: Mapping[str, Any]) -> None:
        rated = point
        if isinstance(data.get("touchpoint"), str) and data["touchpoint"].count("/") == 2:
            try:
                rated = Touchpoint.parse(data["touchpoint"])
            except ValueError:
                rated = point
        score, scale = data.get("score"), data.get("scale")
        if scale in ("nps", "csat") and isinstance(score, int) and not isinstance(score, bool):
            self.ratings.setdefault((rated, scale), []).append(score)


def facts_by_hour(events: Iterable[tuple[Mapping[str, Any], datetime]], policy: StitchPolicy) -> dict[int, Facts]:
    """The facts of each UTC hour these events fall in (``hq.core.records.hour_of``): what storage
    files as the hour's rollups, so a report over whole hours combines exactly these."""
    hours: dict[int, Facts] = {}
    for event, time in events:
        facts = hours.get(hour_of(time))
        if facts is None:
            facts = hours[hour_of(time)] = Facts()
        facts.add(event, attribution_identifier(event, policy), time)
    return hours


def combined(spans: Iterable[Facts], tmap: TouchpointMap | None = None) -> Facts:
    """The facts of the union of disjoint spans, which stay as they are: parts are shared, and
    only a session with parts in several spans gets a new part (dictionary work in C otherwise)."""
    whole = Facts(tmap or TouchpointMap())
    copies: dict[int, SessionPart] = {}  # by id: the parts that are ours to change
    merged = functools.partial(absorbed, copies=copies)
    for facts in spans:
        for point, parts in facts.edge.items():
            _join(whole.edge.setdefault(point, {}), parts, merged)
        for point, visit_parts in facts.visits.items():
            _join(whole.visits.setdefault(point, {}), visit_parts, merged)
        for point, values in facts.dwell.items():
            whole.dwell.setdefault(point, []).extend(values)
        for rated, scores in facts.ratings.items():
            whole.ratings.setdefault(rated, []).extend(scores)
        earliest(whole.requested, facts.requested)
        earliest(whole.fulfilled, facts.fulfilled)
        whole.purchases += facts.purchases
        for bought, times in facts.pos.items():
            whole.pos.setdefault(bought, []).extend(times)
        whole.events += facts.events
    return whole


def _join(held: dict[Any, Any], found: Mapping[Any, Any], merge: Callable[[Any, Any], Any]) -> None:
    """Add ``found`` to ``held``, ``merge(held's, found's)`` where both have a key: dictionary work
    in C, but for the few keys in both."""
    earlier = [(key, held[key]) for key in held.keys() & found.keys()]
    held.update(found)
    for key, value in earlier:
        held[key] = merge(value, found[key])


def absorbed(part: Part, other: Part, copies: dict[int, SessionPart]) -> SessionPart:
    """``part`` with ``other`` added: ``part`` itself when it is one of ``copies``, else a new copy
    (what is shared stays as it is)."""
    copy = copies.get(id(part))
    if copy is not part:
        copy = SessionPart.copy_of(part)
        copies[id(copy)] = copy
    copy.absorb(other)
    return copy


def earliest(into: dict[tuple[str, str], datetime], found: Mapping[tuple[str, str], datetime]) -> None:
    """Add ``found`` to ``into``, keeping the earlier time where both have a key."""
    _join(into, found, min)


def _open_part(parts: dict[K, Part], key: K, point: Touchpoint, store: str | None, time: datetime) -> SessionPart:
    """The session part at ``key``, ours to change: the one there, a new one, or a copy of a frozen one."""
    part = parts.get(key)
    if not isinstance(part, SessionPart):
        part = parts[key] = SessionPart(point, store, time) if part is None else SessionPart.copy_of(part)
    return part


def _frozen(parts: dict[Any, Part]) -> dict[Any, Part]:
    return {key: part.freeze() if isinstance(part, SessionPart) else part for key, part in parts.items()}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
