"""Touchpoint metrics, the phase funnel and common paths: their definitions, computed from facts.

Events become identity-free :class:`hq.core.facts.Facts` first (mergeable, so HQ caches them per
hour); ``report`` combines facts under an identity graph and measures. ``compute`` does both for a
list of attributed events: it is the reference that the cached way must equal.

Definitions (``window`` is ``[start, end)``; a value that has no data is None, never 0):

- **session**: the events of one edge ``session_id`` on one device; for digital and POS events,
  the events of one touchpoint by one visitor (person, else anonymous id, else the event) on one
  UTC day, counting only its events in the window. A session belongs to its touchpoint. Its
  person is the customer its events are attributed to, if any, else the smallest of theirs.
- **reach**: per touchpoint, ``sessions``, distinct ``persons`` and distinct ``customers`` (persons
  whose canonical id is a customer); ``daily_sessions`` splits the sessions by the day of the
  window their first event fell on (whole days from the start; a remainder joins the last day).
- **engagement**: ``session_seconds`` summarises the ``duration_ms`` of each session's latest
  ``session.ended``; ``dwell_seconds``
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
- **funnel**: each person's deepest phase in ``PHASES`` order among the touchpoints of their
  sessions; a stage counts the persons who reached it or a later one; ``drop_off`` is the share
  lost before the next stage.
- **paths**: each person's sessions in order of their first event (ties by touchpoint), as
  touchpoints, repeats in a row collapsed, first ``path_length`` kept; the ``top_paths`` most
  common, ties by path. A path steps from touchpoint to touchpoint, not from event to event.

With ``store``, touchpoint metrics and size requests keep that store's touchpoints, and the
funnel and paths keep the persons who had a session at that store (all their sessions).
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import compress

from contract.envelope import event_name, parse_time
from hq.core.facts import AFTER_WINDOW, Facts, Part, SessionPart, absorbed, combined, earliest
from hq.core.identity import AttributedEvent
from hq.core.touchpoints import PHASES, Touchpoint, TouchpointMap


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
    daily_sessions: tuple[int, ...]  # sessions by the day of the window they began on: the trend


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


ENDED, SEEN, START = operator.attrgetter("ended"), operator.attrgetter("seen"), operator.attrgetter("start")
IS_CUSTOMER = operator.methodcaller("startswith", "customer:")


class _Assembly:
    """The facts of a window and of the conversion window after it, measured under one identity graph.

    Written for a month of a large retailer (a couple of hundred thousand sessions per report),
    where every step per session counts: sessions come grouped by touchpoint from the facts,
    persons are looked up only in the mapping of stitched identifiers (any other identifier is its
    own person), a person's sessions are kept as (start, touchpoint number) pairs, and persons of
    one session are counted by touchpoint."""

    def __init__(
        self,
        inside: Facts,
        after: Facts,
        window: Window,
        store: str | None,
        policy: MetricsPolicy,
        persons: Mapping[str, str],
    ) -> None:
        self.inside, self.window, self.store, self.policy = inside, window, store, policy
        self.persons = persons
        self._fulfilled = dict(inside.fulfilled)
        earliest(self._fulfilled, after.fulfilled)
        self._purchases: dict[str, list[tuple[datetime, frozenset[str]]]] = {}
        self._pos: dict[str, dict[str, list[datetime]]] = {}  # store -> gtin -> purchase times, sorted
        for facts in (inside, after):
            for ident, time, gtins in facts.purchases:
                self._purchases.setdefault(self.person(ident), []).append((time, gtins))
            for (store_id, gtin), times in facts.pos.items():
                self._pos.setdefault(store_id, {}).setdefault(gtin, []).extend(times)
        for bought in self._pos.values():
            for times in bought.values():
                times.sort()

    def person(self, ident: str) -> str:
        return self.persons.get(ident, ident)

    def report(self) -> Report:
        inside = self.inside
        points = sorted(inside.edge.keys() | inside.visits.keys() | {point for point, _ in inside.ratings})
        by_person: defaultdict[str, list[tuple[datetime, int]]] = defaultdict(list)
        rows = []
        for number, point in enumerate(points):
            sessions = self._sessions(point)
            owners = self._owners(sessions, number, by_person)
            if self._mine(point):
                rows.append(self._touchpoint_metrics(point, sessions, owners))
        funnel, paths = self._journeys(by_person, points)
        return Report(self.window, self.store, tuple(rows), self._size_requests(), funnel, paths)

    def _sessions(self, point: Touchpoint) -> list[Part]:
        """A touchpoint's sessions: edge sessions as they are, digital visits of one person's
        several identifiers on the same day as one (only stitched identifiers can meet)."""
        found = list(self.inside.edge.get(point, {}).values())
        stitched: dict[tuple[date, str], Part] = {}
        copies: dict[int, SessionPart] = {}
        persons = self.persons
        for (day, ident, _), part in self.inside.visits.get(point, {}).items():
            if ident is None or ident not in persons:
                found.append(part)
                continue
            visit = (day, persons[ident])
            if stitched.setdefault(visit, part) is not part:
                stitched[visit] = absorbed(stitched[visit], part, copies)
        found += stitched.values()
        return found

    def _owners(
        self, sessions: list[Part], number: int, by_person: dict[str, list[tuple[datetime, int]]]
    ) -> list[str | None]:
        """Each session's person, also filed with the session's start and touchpoint ``number``
        under ``by_person``: its customer when its events name one (consent withheld splits
        them), else the smallest of their persons; None when nobody is knowable."""
        person = self.persons.get
        owners: list[str | None] = []
        for part in sessions:
            idents = part.idents
            if len(idents) == 1:  # most sessions
                (ident,) = idents
                owner = person(ident, ident)
            elif idents:
                persons = {person(i, i) for i in idents}
                customers = [p for p in persons if p.startswith("customer:")]
                owner = min(customers) if customers else min(persons)
            else:
                owners.append(None)
                continue
            owners.append(owner)
            by_person[owner].append((part.start, number))
        return owners

    def _mine(self, point: Touchpoint) -> bool:
        return self.store is None or (point.channel == "store" and point.place == self.store)

    def _converted(self, point: Touchpoint, sessions: list[Part], owners: list[str | None]) -> int:
        """How many of these sessions (that saw items) were followed by a purchase of one of them."""
        purchases, later = self._purchases, self.policy.conversion_window
        in_store = point.channel == "store"  # only here can an anonymous session convert at the till
        converted = 0
        for part, person in zip(sessions, owners):
            if person is not None:
                bought = purchases.get(person)
                if bought is not None and _bought_seen(part, bought, part.end + later):
                    converted += 1
                    continue
                if person.startswith("customer:"):
                    continue
            if in_store and part.store is not None and self._sold_in_store(part, part.end + later):
                converted += 1
        return converted

    def _sold_in_store(self, part: Part, until: datetime) -> bool:
        """Whether the session's store sold an item it saw between its start and ``until``."""
        sold = self._pos.get(part.store)  # type: ignore[arg-type]
        if sold is None:
            return False
        for gtin in part.seen:
            times = sold.get(gtin)  # sorted
            if times:
                i = bisect.bisect_left(times, part.start)
                if i < len(times) and times[i] <= until:
                    return True
        return False

    def _touchpoint_metrics(
        self, point: Touchpoint, sessions: list[Part], owners: list[str | None]
    ) -> TouchpointMetrics:
        people = set(owners)
        people.discard(None)
        seen = list(map(SEEN, sessions))
        product = list(compress(sessions, seen))  # the sessions that saw an item, and their persons
        converted = self._converted(point, product, list(compress(owners, seen)))
        inside = self.inside
        return TouchpointMetrics(
            touchpoint=point,
            phase=self.policy.tmap.phase(point),
            sessions=len(sessions),
            persons=len(people),
            customers=sum(map(IS_CUSTOMER, people)),
            session_seconds=Summary.of([ended[1] for ended in map(ENDED, sessions) if ended is not None]),
            dwell_seconds=Summary.of(inside.dwell.get(point, [])),
            items_per_session=sum(map(len, seen)) / len(sessions) if sessions else None,
            product_sessions=len(product),
            converted=converted,
            conversion=converted / len(product) if product else None,
            nps=nps(inside.ratings.get((point, "nps"), [])),
            csat=csat(inside.ratings.get((point, "csat"), [])),
            daily_sessions=self._daily(list(map(START, sessions))),
        )

    def _daily(self, starts: list[datetime]) -> tuple[int, ...]:
        """How many of these began on each day of the window (a last short day joins the one before)."""
        days = max((self.window.end - self.window.start).days, 1)
        day_ends = [self.window.start + timedelta(days=d) for d in range(1, days)]
        counts = Counter(map(functools.partial(bisect.bisect_right, day_ends), starts))
        return tuple(counts[day] for day in range(days))

    def _size_requests(self) -> tuple[ResponseTimes, ...]:
        waits: dict[str, list[float]] = {}
        unanswered: Counter[str] = Counter()
        for key, asked in self.inside.requested.items():
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
            rows.append(
                ResponseTimes(
                    store,
                    len(values),
                    unanswered[store],
                    statistics.median(values) if values else None,
                    nearest_rank(values, 0.9),
                )
            )
        return tuple(rows)

    def _journeys(
        self, by_person: dict[str, list[tuple[datetime, int]]], points: list[Touchpoint]
    ) -> tuple[tuple[FunnelStage, ...], tuple[PathCount, ...]]:
        """The funnel and the top paths, from each person's sessions in time order (ties by
        touchpoint), for the persons the store filter keeps; persons of one session (most) counted
        by touchpoint, the others one by one."""
        ranks = [PHASES.index(self.policy.tmap.phase(point)) for point in points]
        mine = [self._mine(point) for point in points]
        deepest = [0] * len(PHASES)
        counts: Counter[tuple[int, ...]] = Counter()
        alone: Counter[int] = Counter()
        for found in by_person.values():  # never empty: a person here has a session
            if len(found) == 1:
                alone[found[0][1]] += 1
                continue
            found.sort()
            numbers = [number for _, number in found]
            if self.store is not None and not any(mine[n] for n in numbers):
                continue
            deepest[max(map(ranks.__getitem__, numbers))] += 1
            counts[self._path(numbers)] += 1
        for number, persons in alone.items():
            if mine[number]:
                deepest[ranks[number]] += persons
                counts[(number,)] += persons
        reached = [sum(deepest[i:]) for i in range(len(PHASES))]
        funnel = tuple(
            FunnelStage(
                phase, reached[i], 1 - reached[i + 1] / reached[i] if i + 1 < len(PHASES) and reached[i] > 0 else None
            )
            for i, phase in enumerate(PHASES)
        )
        labels = [str(point) for point in points]
        ranked = sorted(
            ((tuple(labels[n] for n in path), persons) for path, persons in counts.items()),
            key=lambda item: (-item[1], item[0]),
        )
        return funnel, tuple(PathCount(steps, persons) for steps, persons in ranked[: self.policy.top_paths])

    def _path(self, numbers: list[int]) -> tuple[int, ...]:
        """Repeats in a row collapsed, the first ``path_length`` kept."""
        path = [numbers[0]]
        for number in numbers:
            if number != path[-1]:
                if len(path) == self.policy.path_length:
                    break
                path.append(number)
        return tuple(path)


def _bought_seen(part: Part, bought: list[tuple[datetime, frozenset[str]]], until: datetime) -> bool:
    """Whether one of a person's purchases between the session's start and ``until`` has an item it saw."""
    start = part.start
    return any(start <= time <= until and not gtins.isdisjoint(part.seen) for time, gtins in bought)


def report(
    inside: Iterable[Facts],
    after: Iterable[Facts],
    window: Window,
    store: str | None = None,
    policy: MetricsPolicy | None = None,
    persons: Mapping[str, str] | None = None,
) -> Report:
    """Every metric from the facts of the window's events (``inside``) and of the events up to the
    conversion window after it (``after``); ``persons`` maps stitched identifiers to their person
    (``IdentityGraph.stitched``), any other identifier is a person of its own."""
    policy = policy or MetricsPolicy()
    return _Assembly(
        combined(inside, policy.tmap), combined(after, policy.tmap), window, store, policy, persons or {}
    ).report()


def compute(
    events: Iterable[AttributedEvent], window: Window, store: str | None = None, policy: MetricsPolicy | None = None
) -> Report:
    """Every metric over attributed events, streamed once; see the module docstring for definitions.

    The reference the cached, per-hour way of ``hq.analytics.journeys.touchpoint_report`` must equal."""
    policy = policy or MetricsPolicy()
    inside, after = Facts(policy.tmap), Facts(policy.tmap)
    horizon = window.end + policy.conversion_window
    for item in events:
        time = parse_time(item.event["time"])
        if time in window:
            inside.add(item.event, item.person, time)
        elif window.end <= time < horizon and event_name(item.event) in AFTER_WINDOW:
            after.add(item.event, item.person, time)
    return report([inside.freeze()], [after.freeze()], window, store, policy)
