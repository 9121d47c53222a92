"""A touchpoint report from what the database sums up: the figures storage returns, and the Report they make.

The definitions are ``hq.core.report``'s, whose in-memory ``compute`` stays the oracle. Here the
database does the counting over its hourly rollups (``hq.storage.report_sql``) and hands back per
touchpoint, store, phase and path only the few numbers of :class:`RollupFigures`; this module
decides what the database cannot: the order and phase of touchpoints (``arrange``), and turns
counts into the report's ratings, medians and funnel. Windows are whole UTC hours
(``whole_hours``): the rollups' grain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from hq.core.records import HOUR, hour_of, hour_start, micros
from hq.core.report import (
    FunnelStage,
    MetricsPolicy,
    PathCount,
    Report,
    ResponseTimes,
    Summary,
    TouchpointMetrics,
    Window,
    csat,
    nps,
)
from hq.core.touchpoints import PHASES, Touchpoint

DAY_US = 86_400_000_000


class PointInfo(tuple[str, int, int, bool, bool]):
    """A touchpoint of the window as the report's SQL needs it: its text, its number in touchpoint
    order, its phase's rank in PHASES, whether the store filter keeps it, whether it is in a store."""

    __slots__ = ()

    def __new__(cls, point: str, number: int, rank: int, mine: bool, in_store: bool) -> PointInfo:
        return super().__new__(cls, (point, number, rank, mine, in_store))


@dataclass(frozen=True)
class RollupQuery:
    """What one report asks of the rollups: hours ``[first_hour, end_hour)`` for the window,
    ``[first_hour, after_hour)`` for the purchases and answers that may follow it."""

    first_hour: int
    end_hour: int
    after_hour: int
    start_us: int
    conversion_us: int
    days: int
    store: str | None
    path_length: int
    top_paths: int


class Median(tuple[str, int, float | None, float | None, float | None]):
    """Of some values under a key: (key, n, mean, lower middle, upper middle)."""

    __slots__ = ()

    def summary(self) -> Summary:
        _, n, mean, low, high = self
        if not n or low is None or high is None:
            return Summary(0, None, None)
        return Summary(n, mean, (low + high) / 2)


@dataclass(frozen=True)
class PointCounts:
    point: str
    sessions: int
    persons: int
    customers: int
    items: int
    product_sessions: int
    converted: int


@dataclass(frozen=True)
class SizeCounts:
    store: str
    unanswered: int
    waits: Median
    p90_s: float | None


@dataclass(frozen=True)
class RollupFigures:
    """Everything the database counted for one report."""

    points: Sequence[PointInfo]
    counts: Sequence[PointCounts]
    daily: Sequence[tuple[str, int, int]]  # point, day of the window, sessions begun
    session_seconds: Sequence[Median]
    dwell_seconds: Sequence[Median]
    ratings: Sequence[tuple[str, str, int, int]]  # point, scale, score, answers
    sizes: Sequence[SizeCounts]
    deepest: Sequence[tuple[int, int]]  # phase rank, persons whose deepest phase it is
    paths: Sequence[tuple[tuple[int, ...], int]]  # touchpoint numbers, persons (the top ones and their ties)


def whole_hours(window: Window) -> Window:
    """The window widened to whole UTC hours: ``start`` down, ``end`` up."""
    end = hour_start(hour_of(window.end))
    return Window(hour_start(hour_of(window.start)), end if end == window.end else end + HOUR)


def query(window: Window, store: str | None, policy: MetricsPolicy) -> RollupQuery:
    """The rollup query of a whole-hour window (``whole_hours``)."""
    if policy.conversion_window % HOUR:
        raise ValueError("conversion window: whole hours")
    first, end = hour_of(window.start), hour_of(window.end)
    return RollupQuery(
        first_hour=first,
        end_hour=end,
        after_hour=end + policy.conversion_window // HOUR,
        start_us=micros(window.start),
        conversion_us=policy.conversion_window // timedelta(microseconds=1),
        days=max((window.end - window.start).days, 1),
        store=store,
        path_length=policy.path_length,
        top_paths=policy.top_paths,
    )


def arrange(points: Sequence[str], store: str | None, policy: MetricsPolicy) -> list[PointInfo]:
    """Number the window's touchpoints in Touchpoint order, with their phase rank and filters."""
    ordered = sorted(Touchpoint.parse(point) for point in set(points))
    return [
        PointInfo(
            str(point),
            number,
            PHASES.index(policy.tmap.phase(point)),
            store is None or (point.channel == "store" and point.place == store),
            point.channel == "store",
        )
        for number, point in enumerate(ordered)
    ]


def assemble(figures: RollupFigures, window: Window, store: str | None, policy: MetricsPolicy) -> Report:
    """The report the figures make, by ``hq.core.report``'s definitions."""
    info = {p[0]: p for p in figures.points}
    counts = {c.point: c for c in figures.counts}
    daily: dict[str, list[int]] = {}
    days = max((window.end - window.start).days, 1)
    for point, day, n in figures.daily:
        daily.setdefault(point, [0] * days)[day] += n
    seconds = {m[0]: m.summary() for m in figures.session_seconds}
    dwell = {m[0]: m.summary() for m in figures.dwell_seconds}
    scores: dict[tuple[str, str], list[int]] = {}
    for point, scale, score, n in figures.ratings:
        scores.setdefault((point, scale), []).extend([score] * n)
    rows = []
    for point, _, _, mine, _ in figures.points:
        if not mine:
            continue
        found = counts.get(point) or PointCounts(point, 0, 0, 0, 0, 0, 0)
        touchpoint = Touchpoint.parse(point)
        rows.append(
            TouchpointMetrics(
                touchpoint=touchpoint,
                phase=policy.tmap.phase(touchpoint),
                sessions=found.sessions,
                persons=found.persons,
                customers=found.customers,
                session_seconds=seconds.get(point, Summary(0, None, None)),
                dwell_seconds=dwell.get(point, Summary(0, None, None)),
                items_per_session=found.items / found.sessions if found.sessions else None,
                product_sessions=found.product_sessions,
                converted=found.converted,
                conversion=found.converted / found.product_sessions if found.product_sessions else None,
                nps=nps(scores.get((point, "nps"), [])),
                csat=csat(scores.get((point, "csat"), [])),
                daily_sessions=tuple(daily.get(point, [0] * days)),
            )
        )
    sizes = tuple(
        ResponseTimes(s.store, s.waits[1], s.unanswered, s.waits.summary().median, s.p90_s) for s in figures.sizes
    )
    labels = {number: point for point, number, *_ in info.values()}
    return Report(window, store, tuple(rows), sizes, _funnel(figures.deepest), _paths(figures.paths, labels, policy))


def _funnel(deepest: Sequence[tuple[int, int]]) -> tuple[FunnelStage, ...]:
    by_rank = [0] * len(PHASES)
    for rank, persons in deepest:
        by_rank[rank] += persons
    reached = [sum(by_rank[i:]) for i in range(len(PHASES))]
    return tuple(
        FunnelStage(
            phase, reached[i], 1 - reached[i + 1] / reached[i] if i + 1 < len(PHASES) and reached[i] > 0 else None
        )
        for i, phase in enumerate(PHASES)
    )


def _paths(
    paths: Sequence[tuple[tuple[int, ...], int]], labels: dict[int, str], policy: MetricsPolicy
) -> tuple[PathCount, ...]:
    ranked = sorted(
        ((tuple(labels[n] for n in path), persons) for path, persons in paths), key=lambda item: (-item[1], item[0])
    )
    return tuple(PathCount(steps, persons) for steps, persons in ranked[: policy.top_paths])
