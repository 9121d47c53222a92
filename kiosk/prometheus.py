"""``/healthz`` and ``/metrics``: component states for the supervisor, Prometheus text for scraping.

Each app has its own registry; one collector reads the edge's state at scrape time, so nothing
on the read path pays for metrics.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from common.webserver import METRICS_CLOSED, metrics_allowed
from kiosk.edge import EXTENSION, current_edge
from kiosk.status import status as edge_status

REGISTRY = "touchpoint.metrics"
PREFIX = "touchpoint_edge"
READER_STATES = ("connecting", "connected", "disconnected", "stopped")

bp = Blueprint("health", __name__)


class EdgeCollector:
    """Turns the edge's status into metric families on every scrape."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        edge = self.app.extensions[EXTENSION]
        status = edge_status(edge)
        reader = status["reader"] or {}
        readers = status["readers"]

        def total(key: str) -> int:
            return sum(r[key] for r in readers)

        yield _counter("reads", "tag reads decoded from the RFID readers", total("reads_total"))
        yield _counter("frames", "frames received from the RFID readers", total("frames_total"))
        yield _counter("bad_frames", "frames with a bad checksum or truncated", total("bad_frames"))
        yield _counter("reader_reconnects", "times a reader was reopened", total("reconnects"))
        state = GaugeMetricFamily(f"{PREFIX}_reader_state", "1 for the first reader's current state", labels=["state"])
        current = reader.get("state", "absent")
        for name in sorted({*READER_STATES, current}):
            state.add_metric([name], 1.0 if name == current else 0.0)
        yield state
        present = GaugeMetricFamily(f"{PREFIX}_tags_present", "tags present now", labels=["zone"])
        for zone, tags in edge.presence_json()["zones"].items():
            present.add_metric([zone], len(tags))
        yield present
        outbox = status["outbox"]
        yield GaugeMetricFamily(f"{PREFIX}_outbox_depth", "events waiting for HQ", value=outbox["depth"])
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_age_seconds", "age of the oldest waiting event", value=outbox["oldest_age_s"]
        )
        yield _counter("outbox_dropped", "events refused by a full outbox or disk", outbox["dropped"])
        yield GaugeMetricFamily(f"{PREFIX}_sse_clients", "open event streams", value=status["stream"]["clients"])
        synced = status["sync"] or {}
        yield _counter(
            "sync_acks_refused",
            "acks the sync agent refused: unsigned or not signed with this device's key",
            synced.get("refused_acks", 0),
        )
        unrecoverable = sum(hi - lo + 1 for lo, hi in synced.get("unrecoverable", ()))
        yield GaugeMetricFamily(
            f"{PREFIX}_sync_unrecoverable_events",
            "events HQ lacks that this device no longer holds",
            value=unrecoverable,
        )
        recorded = CounterMetricFamily(f"{PREFIX}_events_recorded", "events stored in the outbox", labels=["type"])
        for name, count in sorted(edge.recorded.items()):
            recorded.add_metric([name], count)
        yield recorded


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)


@bp.get("/metrics")
def scrape() -> Response | tuple[Response, int]:
    """Prometheus text format; ``[web] metrics_token`` or ``metrics_listen``."""
    if not metrics_allowed(request.environ, current_app.config["TOUCHPOINT"].web.metrics_token):
        return jsonify(error=METRICS_CLOSED), 401
    return Response(generate_latest(current_app.extensions[REGISTRY]), content_type=CONTENT_TYPE_LATEST)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 with component states, 503 when events can no longer be recorded."""
    edge = current_edge()
    components: dict[str, Any] = {}
    healthy = True
    try:
        edge.outbox.stats()
        components["outbox"] = "ok"
    except sqlite3.Error as error:
        components["outbox"] = f"unusable: {error}"
        healthy = False
    components["reader"] = edge.reader.status().state.value if edge.reader else "absent"
    components["catalog"] = edge.catalog.version
    components["stream_clients"] = edge.hub.clients
    body = {"status": "ok" if healthy else "unavailable", "components": components}
    return jsonify(body), 200 if healthy else 503


def init_app(app: Flask) -> None:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(EdgeCollector(app))
    app.extensions[REGISTRY] = registry
    app.register_blueprint(bp)
