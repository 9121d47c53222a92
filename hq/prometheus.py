"""HQ's Prometheus metrics: one registry per app, so tests and several apps never collide.

Ingest counters are incremented by the workers of the same process; the fleet gauges (devices
online, gaps) are read from storage when ``/metrics`` is scraped, so a web-only process that
shares the database reports them too.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hq.storage import Storage


class RateWindow:
    """Events per second over the last ``span_s`` seconds; time is passed in."""

    def __init__(self, span_s: float = 60.0) -> None:
        self.span_s = span_s
        self._samples: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, count: int, now: float) -> None:
        self._samples.append((now, count))
        self._total += count
        self._expire(now)

    def rate(self, now: float) -> float:
        self._expire(now)
        return self._total / self.span_s

    def _expire(self, now: float) -> None:
        while self._samples and self._samples[0][0] <= now - self.span_s:
            self._total -= self._samples.popleft()[1]


class HqMetrics:
    """The counters the ingest workers update and ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "touchpoint_hq_events_ingested",
            "Valid events received, new or re-sent, by type",
            ["type"],
            registry=self.registry,
        )
        self.stored = Counter("touchpoint_hq_events_stored", "Events new to HQ and committed", registry=self.registry)
        self.duplicates = Counter(
            "touchpoint_hq_duplicate_events", "Re-sent events already stored", registry=self.registry
        )
        self.dead_letters = Counter(
            "touchpoint_hq_dead_letters", "Refused payloads and events, by reason", ["reason"], registry=self.registry
        )
        self.batches = Counter("touchpoint_hq_batches", "Uplink event batches processed", registry=self.registry)
        self.storage_errors = Counter(
            "touchpoint_hq_storage_errors", "Batches the database failed to store", registry=self.registry
        )
        self.ack_latency = Histogram(
            "touchpoint_hq_ack_publish_seconds",
            "From receiving a batch to publishing its ack (after the commit)",
            registry=self.registry,
        )
        self.report_seconds = Histogram(
            "touchpoint_hq_report_seconds",
            "Touchpoint reports computed from the rollups, by how long the database took",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.window = RateWindow()
        rate = Gauge(
            "touchpoint_hq_ingest_rate", "Events stored per second over the last minute", registry=self.registry
        )
        rate.set_function(lambda: self.window.rate(time.time()))  # the clock batches are stamped with

    def watch(self, storage: Storage) -> None:
        """Report the fleet gauges from ``storage`` at every scrape."""
        self.registry.register(FleetCollector(storage))


class FleetCollector(Collector):
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def collect(self) -> Iterator[GaugeMetricFamily]:
        devices = self.storage.devices()
        yield GaugeMetricFamily("touchpoint_hq_devices", "Devices HQ knows", value=len(devices))
        yield GaugeMetricFamily(
            "touchpoint_hq_devices_online", "Devices whose last status is online", value=sum(d.online for d in devices)
        )
        yield GaugeMetricFamily(
            "touchpoint_hq_gap_events",
            "Seqs missing between devices' contiguous prefix and their highest stored seq",
            value=sum(hi - lo + 1 for d in devices for lo, hi in d.gaps),
        )
        yield GaugeMetricFamily(
            "touchpoint_hq_devices_with_gaps", "Devices with at least one gap", value=sum(bool(d.gaps) for d in devices)
        )
