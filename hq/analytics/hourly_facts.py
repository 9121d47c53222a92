"""Touchpoint facts per UTC hour of event time, kept between reports and rebuilt only where events changed.

A touchpoint report over a month reads half a million events; most of those hours have not
changed since the last report. :class:`HourlyFacts` keeps the identity-free
:class:`hq.core.facts.Facts` of each whole hour with the hour's version from storage (which
every insert and erasure of an event of that hour raises, ``Storage.hour_versions``) and reads
again only the hours whose version moved, plus the partial hours at a window's edges. Facts do not
depend on the identity graph, so a late link costs nothing here: the report resolves persons.

Whole UTC days are also kept combined (``hq.core.facts.combined``), tagged with the versions of
their hours, and so is the run of whole days of each period of the latest request: a report over
the last 30 days joins one run (the same all day long) and a few hours. A day whose hour changed is
combined again from its hours, of which only the changed one is read.

The version is read before the events, so an insert racing a rebuild leaves facts tagged older
than they are (read again next time), never newer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from itertools import groupby

from hq.core.facts import Facts, combined
from hq.core.identity import StitchPolicy, attribution_identifier
from hq.core.records import hour_of, hour_start
from hq.core.touchpoints import TouchpointMap
from hq.storage import Storage

Stamps = tuple[tuple[int, int], ...]  # a day's hours with events, each with its version
KEEP_HOURS = 24 * 45  # a 30-day report and its 7-day conversion window, with room ([hq] report_cache_days)


class HourlyFacts:
    """One per web process: ``between`` gives the facts of a period, whole hours from the cache."""

    def __init__(
        self,
        storage: Storage,
        tmap: TouchpointMap | None = None,
        stitch: StitchPolicy | None = None,
        keep_hours: int = KEEP_HOURS,
    ) -> None:
        self.storage = storage
        self.tmap = tmap or TouchpointMap()
        self.stitch = stitch or StitchPolicy()
        self.keep_hours = keep_hours
        self.hours_read = 0  # whole hours read from storage since start: what the cache saved shows here
        self.days_combined = 0
        self._hours: dict[int, tuple[int, Facts]] = {}
        self._days: dict[int, tuple[Stamps, Facts]] = {}  # day -> its hours' (hour, version), facts
        self._runs: dict[tuple[tuple[int, Stamps], ...], Facts] = {}  # whole days -> combined, latest request's
        self._lock = threading.Lock()

    def between(self, *periods: tuple[datetime, datetime]) -> list[list[Facts]]:
        """The facts of each ``[start, end)`` period, from one look at the hour versions."""
        bounds = [(start, end) for start, end in periods if start < end]
        if not bounds:
            return [[] for _ in periods]
        first = min(hour_of(start) for start, _ in bounds)
        stop = max(hour_of(end) for _, end in bounds) + 1
        with self._lock:
            versions = self.storage.hour_versions(first, stop)
            runs: dict[tuple[tuple[int, Stamps], ...], Facts] = {}
            found = [list(self._period(start, end, versions, runs)) for start, end in periods]
            self._evict(first, stop)
            self._runs = {
                key: run
                for key, run in runs.items()  # only while every day of it is held
                if all(day in self._days and self._days[day][0] == stamps for day, stamps in key)
            }
        return found

    def _period(
        self,
        start: datetime,
        end: datetime,
        versions: dict[int, int],
        runs: dict[tuple[tuple[int, Stamps], ...], Facts],
    ) -> Iterator[Facts]:
        hours = sorted(h for h in versions if hour_of(start) <= h <= hour_of(end))
        whole_days = []
        for day, of_day in groupby(hours, key=lambda hour: hour // 24):
            if start <= hour_start(day * 24) and hour_start(day * 24 + 24) <= end:
                whole_days.append((day, tuple((hour, versions[hour]) for hour in of_day)))
                continue
            for hour in of_day:
                low, high = hour_start(hour), hour_start(hour + 1)
                if low >= end or high <= start:
                    continue
                if start <= low and high <= end:
                    yield self._whole_hour(hour, versions[hour])
                else:
                    yield self._read(max(start, low), min(end, high))
        if whole_days:
            key = tuple(whole_days)
            run = (
                self._runs.get(key)
                or combined((self._whole_day(day, stamps) for day, stamps in whole_days), self.tmap).freeze()
            )
            runs[key] = run
            yield run

    def _whole_day(self, day: int, stamps: Stamps) -> Facts:
        cached = self._days.get(day)
        if cached is not None and cached[0] == stamps:
            return cached[1]
        facts = combined((self._whole_hour(hour, version) for hour, version in stamps), self.tmap).freeze()
        self._days[day] = (stamps, facts)
        self.days_combined += 1
        return facts

    def _whole_hour(self, hour: int, version: int) -> Facts:
        cached = self._hours.get(hour)
        if cached is not None and cached[0] == version:
            return cached[1]
        facts = self._read(hour_start(hour), hour_start(hour + 1))
        self._hours[hour] = (version, facts)
        self.hours_read += 1
        return facts

    def _read(self, start: datetime, end: datetime) -> Facts:
        """The facts of the events with ``start <= time < end``: one indexed range query."""
        facts = Facts(self.tmap)
        for event, time in self.storage.events_between(start, end):
            facts.add(event, attribution_identifier(event, self.stitch), time)
        return facts.freeze()

    def _evict(self, first: int, stop: int) -> None:
        """Past the limit, drop the hours the latest report did not use, then its earliest ones: the
        next report most likely ends near now again. A day goes with the first of its hours."""
        if len(self._hours) > self.keep_hours:
            for hour in [h for h in self._hours if not first <= h < stop]:
                del self._hours[hour]
            for hour in sorted(self._hours)[: max(0, len(self._hours) - self.keep_hours)]:
                del self._hours[hour]
            for day in [d for d, (stamps, _) in self._days.items() if not all(h in self._hours for h, _ in stamps)]:
                del self._days[day]

    @property
    def hours_held(self) -> int:
        """How many hours are cached; without the lock, so a scrape never waits for a report."""
        return len(self._hours)

    def cached_hours(self) -> list[int]:
        """The hours held, oldest first."""
        with self._lock:
            return sorted(self._hours)

    def cached_days(self) -> list[int]:
        """The days held combined (UTC days since 1970), oldest first."""
        with self._lock:
            return sorted(self._days)
