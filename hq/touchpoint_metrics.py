"""Touchpoint metrics, the phase funnel and common paths, from attributed events in one pass.

Definitions (``window`` is ``[start, end)``; a value that has no data is None, never 0):

- **session**: the events of one edge ``session_id`` on one device; for digital and POS events,
  the events of one touchpoint by one visitor (person, else anonymous id, else the event) on one
  UTC day. A session belongs to its touchpoint and counts when its first event is in the window.
  Its person is the customer its events are attributed to, if any, else the smallest of theirs.
- **reach**: per touchpoint, ``sessions``, distinct ``persons`` and distinct ``customers`` (persons
  whose canonical id is a customer).
- **engagement**: ``session_seconds`` summarises ``session.ended`` ``duration_ms``; ``dwell_seconds``
  summarises ``tag.departed`` ``dwell_ms`` (n, mean, median); ``items_per_session`` is the mean count
  of distinct GTINs seen per session (tags, product views, size requests, hand-offs, product pages,
  wishlist and cart).
- **conversion**: among sessions that saw an item (``product_sessions``), the share followed by a
  purchase of a seen GTIN between the session's start and ``conversion_window`` (default 7 days)
  after its end: a purchase by the same person, or, for a session whose person is not a customer,
  a POS purchase in the session's store. Pass purchases up to ``end + conversion_window``.
- **NPS** per rated touchpoint: 100 x (share of 9-10 minus share of 0-6) of the ``nps`` answers;
  **CSAT**: share of 4-5 among ``csat`` answers. The rated touchpoint is ``data.touchpoint`` when it
  is a full ``channel/place/kind``, else the touchpoint the answer was given at.
- **size requests** per store: seconds from ``size.requested`` to the first ``size.fulfilled``
  with the same ``request_id``; median and p90 (nearest rank); ``unanswered`` counts requests
  with no fulfilment (or one stamped before the request).
- **funnel**: each person's deepest phase in ``PHASES`` order among their touches in the window;
  a stage counts the persons who reached it or a later one; ``drop_off`` is the share lost before
  the next stage.
- **paths**: each person's touchpoints in time order, repeats in a row collapsed, first
  ``path_length`` kept; the ``top_paths`` most common, ties by path.

With ``store``, touchpoint metrics and size requests keep that store's touchpoints, and the
funnel and paths keep the persons who touched that store in the window (all their touches).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hq.identity import AttributedEvent
from hq.touchpoints import PHASES, Touchpoint, TouchpointMap, purchased_gtins, store_of, touchpoint_of
from sync.envelope import event_name, parse_time

# The only events a report uses from after its window (up to the conversion window later): the
# purchases that convert its sessions and the fulfilments that answer its size requests.
AFTER_WINDOW = frozenset({"purchase.completed", "size.fulfilled"})
SEEN_ONE = frozenset({"tag.arrived", "tag.departed", "product.viewed", "size.requested", "page.viewed",
                      "wishlist.added", "cart.added"})


@dataclass(frozen=True)
class Window:
    """A half-open period ``[start, end)``."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class MetricsPolicy:
    conversion_window: timedelta = timedelta(days=7)
    path_length: int = 6
    top_paths: int = 10
    tmap: TouchpointMap = field(default_factory=TouchpointMap)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    median: float | None

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        if not values:
            return cls(0, None, None)
        return cls(len(values), statistics.fmean(values), statistics.median(values))


@dataclass(frozen=True)
class Rating:
    """NPS in points (-100..100) or CSAT as a share (0..1), with its number of answers."""

    n: int
    value: float | None


@dataclass(frozen=True)
class TouchpointMetrics:
    touchpoint: Touchpoint
    phase: str
    sessions: int
    persons: int
    customers: int
    session_seconds: Summary
    dwell_seconds: Summary
    items_per_session: float | None
    product_sessions: int
    converted: int
    conversion: float | None
    nps: Rating
    csat: Rating


@dataclass(frozen=True)
class ResponseTimes:
    store: str
    n: int
    unanswered: int
    median_s: float | None
    p90_s: float | None


@dataclass(frozen=True)
class FunnelStage:
    phase: str
    persons: int
    drop_off: float | None  # share of this stage's persons who reach no further stage


@dataclass(frozen=True)
class PathCount:
    steps: tuple[str, ...]
    persons: int


@dataclass(frozen=True)
class Report:
    window: Window
    store: str | None
    touchpoints: tuple[TouchpointMetrics, ...]
    size_requests: tuple[ResponseTimes, ...]
    funnel: tuple[FunnelStage, ...]
    paths: tuple[PathCount, ...]


class _Session:
    __slots__ = ("touchpoint", "persons", "store", "start", "end", "seen", "duration_s")

    def __init__(self, touchpoint: Touchpoint, store: str | None, time: datetime) -> None:
        self.touchpoint = touchpoint
        self.persons: set[str] = set()
        self.store = store
        self.start = self.end = time
        self.seen: set[str] = set()
        self.duration_s: float | None = None

    @property
    def person(self) -> str | None:
        """Its customer when its events name one (consent withheld splits them), else the smallest."""
        customers = sorted(p for p in self.persons if p.startswith("customer:"))
        return customers[0] if customers else min(self.persons, default=None)


def nearest_rank(sorted_values: list[float], share: float) -> float | None:
    """The value at rank ceil(share x n) of sorted values (1-based), None when there are none."""
    if not sorted_values:
        return None
    return sorted_values[max(1, math.ceil(share * len(sorted_values))) - 1]


def nps(scores: list[int]) -> Rating:
    if not scores:
        return Rating(0, None)
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return Rating(len(scores), 100.0 * (promoters - detractors) / len(scores))


def csat(scores: list[int]) -> Rating:
    if not scores:
        return Rating(0, None)
    return Rating(len(scores), sum(1 for s in scores if s >= 4) / len(scores))


def seen_gtins(name: str, data: dict) -> list[str]:
    """The GTINs an event shows the shopper (none for purchases: buying is not seeing)."""
    if name == "handoff.created":
        gtins = data.get("gtins")
        return [g for g in gtins if isinstance(g, str)] if isinstance(gtins, list) else []
    gtin = data.get("gtin") if name in SEEN_ONE else None
    return [gtin] if isinstance(gtin, str) else []


class MetricsBuilder:
    """Feed attributed events in any order with ``add``; ``report`` computes every metric."""

    def __init__(self, window: Window, store: str | None = None, policy: MetricsPolicy | None = None) -> None:
        self.window = window
        self.store = store
        self.policy = policy or MetricsPolicy()
        self._horizon = window.end + self.policy.conversion_window
        self._sessions: dict[tuple[str, ...], _Session] = {}
        self._dwell: dict[Touchpoint, list[float]] = {}
        self._purchases: dict[str, list[tuple[datetime, frozenset[str]]]] = {}
        self._pos: dict[tuple[str, str], list[datetime]] = {}
        self._ratings: dict[tuple[Touchpoint, str], list[int]] = {}
        self._requested: dict[tuple[str, str], datetime] = {}
        self._fulfilled: dict[tuple[str, str], datetime] = {}
        self._touches: dict[str, list[tuple[datetime, str, Touchpoint]]] = {}

    def add(self, item: AttributedEvent) -> None:
        event, person = item.event, item.person
        time = parse_time(event["time"])
        if not self.window.start <= time < self._horizon:
            return
        name = event_name(event)
        if time >= self.window.end and name not in AFTER_WINDOW:
            return
        data = event.get("data") or {}
        store = store_of(event)
        if name == "purchase.completed":
            self._add_purchase(person, store, time, data)
        point = touchpoint_of(event, self.policy.tmap)
        if point is None:
            return
        if name in ("size.requested", "size.fulfilled") and store and isinstance(data.get("request_id"), str):
            self._add_size(name, (store, data["request_id"]), time)
        if time not in self.window:
            return
        if person is not None:
            self._touches.setdefault(person, []).append((time, str(event["id"]), point))
        if name == "feedback.submitted":
            self._add_rating(point, data)
        session = self._session(event, person, point, store, time, data)
        session.start, session.end = min(session.start, time), max(session.end, time)
        session.seen.update(seen_gtins(name, data))
        if name == "session.ended" and isinstance(data.get("duration_ms"), (int, float)):
            session.duration_s = data["duration_ms"] / 1000
        if name == "tag.departed" and isinstance(data.get("dwell_ms"), (int, float)):
            self._dwell.setdefault(point, []).append(data["dwell_ms"] / 1000)

    def _session(self, event: dict, person: str | None, point: Touchpoint, store: str | None,
                 time: datetime, data: dict) -> _Session:
        if "session_id" in data and event["source"].startswith("/stores/"):
            key: tuple[str, ...] = ("edge", event["source"], str(data["session_id"]))
        else:
            visitor = person or data.get("anonymous_id") or str(event["id"])
            key = ("visit", str(point), str(visitor), time.date().isoformat())
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session(point, store, time)
        if person is not None:
            session.persons.add(person)
        return session

    def _add_purchase(self, person: str | None, store: str | None, time: datetime, data: dict) -> None:
        gtins = frozenset(purchased_gtins(data))
        if person is not None:
            self._purchases.setdefault(person, []).append((time, gtins))
        if store is not None:
            for gtin in gtins:
                self._pos.setdefault((store, gtin), []).append(time)

    def _add_rating(self, point: Touchpoint, data: dict) -> None:
        rated = point
        if isinstance(data.get("touchpoint"), str) and data["touchpoint"].count("/") == 2:
            try:
                rated = Touchpoint.parse(data["touchpoint"])
            except ValueError:
                rated = point
        score, scale = data.get("score"), data.get("scale")
        if scale in ("nps", "csat") and isinstance(score, int) and not isinstance(score, bool):
            self._ratings.setdefault((rated, scale), []).append(score)

    def _add_size(self, name: str, key: tuple[str, str], time: datetime) -> None:
        if name == "size.requested":
            if time in self.window:
                self._requested[key] = min(time, self._requested.get(key, time))
        else:
            self._fulfilled[key] = min(time, self._fulfilled.get(key, time))

    # -- report --------------------------------------------------------------------------------

    def report(self) -> Report:
        persons = self._persons_in_scope()
        return Report(self.window, self.store, self._touchpoint_metrics(), self._size_requests(),
                      self._funnel(persons), self._paths(persons))

    def _mine(self, point: Touchpoint) -> bool:
        return self.store is None or (point.channel == "store" and point.place == self.store)

    def _converted(self, session: _Session) -> bool:
        until = session.end + self.policy.conversion_window
        if session.person is not None:
            for time, gtins in self._purchases.get(session.person, ()):
                if session.start <= time <= until and not gtins.isdisjoint(session.seen):
                    return True
        anonymous = session.person is None or not session.person.startswith("customer:")
        if anonymous and session.store is not None and session.touchpoint.channel == "store":
            return any(session.start <= t <= until for g in session.seen for t in self._pos.get((session.store, g), ()))
        return False

    def _touchpoint_metrics(self) -> tuple[TouchpointMetrics, ...]:
        by_point: dict[Touchpoint, list[_Session]] = {}
        for session in self._sessions.values():
            if self._mine(session.touchpoint):
                by_point.setdefault(session.touchpoint, []).append(session)
        rated = {point for point, _ in self._ratings if self._mine(point)}
        rows = []
        for point in sorted(by_point.keys() | rated):
            sessions = by_point.get(point, [])
            people = {s.person for s in sessions if s.person is not None}
            product = [s for s in sessions if s.seen]
            converted = sum(1 for s in product if self._converted(s))
            rows.append(TouchpointMetrics(
                touchpoint=point,
                phase=self.policy.tmap.phase(point),
                sessions=len(sessions),
                persons=len(people),
                customers=sum(1 for p in people if p.startswith("customer:")),
                session_seconds=Summary.of([s.duration_s for s in sessions if s.duration_s is not None]),
                dwell_seconds=Summary.of(self._dwell.get(point, [])),
                items_per_session=statistics.fmean(len(s.seen) for s in sessions) if sessions else None,
                product_sessions=len(product),
                converted=converted,
                conversion=converted / len(product) if product else None,
                nps=nps(self._ratings.get((point, "nps"), [])),
                csat=csat(self._ratings.get((point, "csat"), [])),
            ))
        return tuple(rows)

    def _size_requests(self) -> tuple[ResponseTimes, ...]:
        waits: dict[str, list[float]] = {}
        unanswered: Counter[str] = Counter()
        for key, asked in self._requested.items():
            store = key[0]
            if self.store is not None and store != self.store:
                continue
            waits.setdefault(store, [])
            done = self._fulfilled.get(key)
            if done is None or done < asked:
                unanswered[store] += 1
            else:
                waits[store].append((done - asked).total_seconds())
        rows = []
        for store in sorted(waits):
            values = sorted(waits[store])
            rows.append(ResponseTimes(store, len(values), unanswered[store],
                                      statistics.median(values) if values else None, nearest_rank(values, 0.9)))
        return tuple(rows)

    def _persons_in_scope(self) -> dict[str, list[Touchpoint]]:
        """Each person's touchpoints in time order, for the persons the store filter keeps."""
        ordered = {}
        for person, touches in self._touches.items():
            touches.sort(key=lambda t: (t[0], t[1]))
            points = [t[2] for t in touches]
            if self.store is None or any(self._mine(p) for p in points):
                ordered[person] = points
        return ordered

    def _funnel(self, persons: dict[str, list[Touchpoint]]) -> tuple[FunnelStage, ...]:
        rank = {phase: i for i, phase in enumerate(PHASES)}
        deepest = Counter(max(rank[self.policy.tmap.phase(p)] for p in points) for points in persons.values())
        reached = [sum(n for depth, n in deepest.items() if depth >= i) for i in range(len(PHASES))]
        stages = []
        for i, phase in enumerate(PHASES):
            has_next = i + 1 < len(PHASES) and reached[i] > 0
            stages.append(FunnelStage(phase, reached[i], 1 - reached[i + 1] / reached[i] if has_next else None))
        return tuple(stages)

    def _paths(self, persons: dict[str, list[Touchpoint]]) -> tuple[PathCount, ...]:
        counts: Counter[tuple[str, ...]] = Counter()
        for points in persons.values():
            path: list[str] = []
            for point in points:
                label = str(point)
                if not path or path[-1] != label:
                    path.append(label)
                if len(path) > self.policy.path_length:
                    path.pop()
                    break
            counts[tuple(path)] += 1
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return tuple(PathCount(steps, n) for steps, n in ranked[: self.policy.top_paths])


def compute(events: Iterable[AttributedEvent], window: Window, store: str | None = None,
            policy: MetricsPolicy | None = None) -> Report:
    """Every metric over attributed events, streamed once; see the module docstring for definitions."""
    builder = MetricsBuilder(window, store, policy)
    for item in events:
        builder.add(item)
    return builder.report()
