"""Touchpoint reports for the API and the dashboard: computed in the background, answered within a budget.

A report is SQL over the database's rollups (``hq.analytics.journeys.touchpoint_report``), so a
web process keeps no history. It keeps only the last few finished reports, each under the
versions of the data it counted: the change versions of its hours (which every stored or erased
event bumps) and the identity version (which every change of a person bumps). A request whose
versions match gets the kept report; any other starts it on the report thread and waits up to
``[web] report_wait_s``; what is not done by then is answered "computing" (``GET /v1/touchpoints``:
202 with ``Retry-After``), and the next request picks up the same computation. Every web process
behind a proxy gives the same answers: they read the same database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from flask import Flask

from contract.envelope import utc_now_iso
from hq.analytics.journeys import touchpoint_report
from hq.core import rollup_report
from hq.core.intake import DEFAULT_BOUNDS, Bounds
from hq.core.records import hour_of
from hq.core.report import MetricsPolicy, Report, Window
from hq.core.touchpoints import PLACE
from hq.prometheus import HqMetrics
from hq.storage import Storage

KEEP = 16  # finished reports kept per web process (a few KB each)
MAX_WINDOW = timedelta(days=400)
EXTENSION = "hq.reports"


def parse_window(args: Mapping[str, str], now: datetime, bounds: Bounds = DEFAULT_BOUNDS) -> Window:
    """``from``/``to`` as RFC 3339 dates or times (default: the last 30 days), both inside the
    window intake accepts event times in (``[intake]``), widened to whole UTC hours; ValueError
    names the parameter."""
    earliest, latest = bounds.window(now)

    def moment(name: str, default: datetime) -> datetime:
        text = args.get(name)
        if not text:
            return default
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
            value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            outside = not earliest <= value <= latest
        except (ValueError, OverflowError):
            raise ValueError(f"{name}: {text[:40]!r} is not an RFC 3339 date or time") from None
        if outside:
            raise ValueError(f"{name}: outside {utc_now_iso(earliest)} .. {utc_now_iso(latest)}, the times HQ accepts")
        return value

    end = moment("to", now)
    start = moment("from", max(end - timedelta(days=30), earliest))
    if not start < end:
        raise ValueError("from: must be before to")
    if end - start > MAX_WINDOW:
        raise ValueError(f"from: at most {MAX_WINDOW.days} days before to")
    return rollup_report.whole_hours(Window(start, end))


def parse_store(args: Mapping[str, str]) -> str | None:
    store = args.get("store") or None
    if store is not None and not PLACE.fullmatch(store):
        raise ValueError("store: 1 to 64 of a-z, 0-9 and '-'")
    return store


class Reports:
    """One per web process: the report thread and the last finished reports by data version."""

    def __init__(self, storage: Storage, metrics: HqMetrics, policy: MetricsPolicy | None = None) -> None:
        self.storage = storage
        self.metrics = metrics
        self.policy = policy or MetricsPolicy()
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple[object, ...], Report] = OrderedDict()
        self._running: dict[tuple[Window, str | None], Future[Report]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hq-report")

    def get(self, window: Window, store: str | None) -> Future[Report]:
        """The report of ``window`` (whole hours) and ``store``: the kept one when the data has not
        changed since, else the one being counted (begun before the newest events, so a request
        never queues a second count of one report), else a new count."""
        key = self._key(window, store)
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                finished: Future[Report] = Future()
                finished.set_result(self._done[key])
                return finished
            running = self._running.get((window, store))
            if running is None:
                running = self._running[(window, store)] = self._pool.submit(self._compute, key, window, store)
            return running

    def _key(self, window: Window, store: str | None) -> tuple[object, ...]:
        after = window.end + self.policy.conversion_window
        versions = self.storage.hour_versions(hour_of(window.start), hour_of(after) + 1)
        return (window, store, hash(tuple(sorted(versions.items()))), self.storage.identity_version())

    def _compute(self, key: tuple[object, ...], window: Window, store: str | None) -> Report:
        try:
            with self.metrics.report_seconds.time():
                report = touchpoint_report(self.storage, window, store, self.policy)
        except BaseException:
            with self._lock:
                self._running.pop((window, store), None)
            raise
        with self._lock:
            self._done[key] = report
            while len(self._done) > KEEP:
                self._done.popitem(last=False)
            self._running.pop((window, store), None)
        return report


def init_app(app: Flask, storage: Storage, metrics: HqMetrics) -> None:
    app.extensions[EXTENSION] = Reports(storage, metrics)


def reports_of(app: Flask) -> Reports:
    reports: Reports = app.extensions[EXTENSION]
    return reports


def warm_up(app: Flask, now: datetime) -> Future[Report]:
    """Start the overview's default report (the 30 days before ``now``) at start-up, so the first
    visitor of the dashboard finds it ready."""
    return reports_of(app).get(parse_window({}, now), None)
