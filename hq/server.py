"""``touchpoint hq``: ingest workers and the web app in one process, or either role alone.

Roles: ``all`` (small set-up), ``ingest`` (``[hq] workers`` MQTT clients, no HTTP, so several
ingest processes can share a machine) and ``web`` (API and health on ``[web] listen``; it starts
the dashboard's default report at once, so the first visitor finds the report cache warm).
Start-up is reported to systemd once everything runs; the watchdog is pinged only while the
database answers.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from datetime import datetime, timezone

from common import systemd
from common.config import HqConfig
from common.errors import ConfigError
from common.webserver import BoundedServer
from hq.core.intake import Bounds
from hq.mqtt.publisher import Recomputer
from hq.mqtt.worker import Ingestor, IngestWorker
from hq.prometheus import HqMetrics
from hq.storage import Storage, open_storage
from hq.web import events_api, reports
from hq.web.app import create_app
from hq.web.customers_api import RECOMPUTE

log = logging.getLogger(__name__)

ROLES = ("all", "ingest", "web")


def client_id(prefix: str, n: int) -> str:
    """``<prefix>-<n>`` (``[hq] client_id``, else ``hq-<hostname>``): the same after a restart, so the
    broker keeps the worker's session and the batches it queued meanwhile reach it."""
    return f"{prefix or 'hq-' + socket.gethostname()}-{n}"[:128]


def serve(config: HqConfig, role: str = "all", stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT, or until ``stop`` is set (tests run it in a thread)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
    if not config.hq.share_group and config.hq.workers > 1:
        raise ConfigError("hq.workers", config.hq.workers, "1 when hq.share_group is empty")
    stop = stop or _stop_on_signals()
    storage = open_storage(config.database.url)
    if storage.backfill_identity(lambda done: log.info("identity from stored link events: %d read", done)):
        log.info("identity built from the events stored before this version (touchpoint hq migrate does this ahead)")
    if storage.backfill_rollups(lambda done: log.info("touchpoint rollups: %d hours of stored events filed", done)):
        log.info("rollups built from the events stored before this version (touchpoint hq migrate does this ahead)")
    metrics = HqMetrics()
    workers: list[IngestWorker] = []
    server: BoundedServer | None = None
    recomputer: Recomputer | None = None
    try:
        if role in ("all", "ingest"):
            ingestor = Ingestor(storage, metrics, config.hq.ack_secret, Bounds.of(config.intake))
            workers = [
                IngestWorker(
                    config.mqtt, client_id(config.hq.client_id, n), ingestor, share_group=config.hq.share_group
                ).start()
                for n in range(1, config.hq.workers + 1)
            ]
        if role in ("all", "web"):
            checks = {"mqtt": lambda: any(w.connected for w in workers)} if workers else {}
            app = create_app(config, storage, metrics=metrics, checks=checks)
            reports.warm_up(app, datetime.now(timezone.utc))
            recomputer = app.extensions[RECOMPUTE] = Recomputer(config, storage).start()
            server = BoundedServer(
                app, config.web, name="touchpoint-hq", route_limit=events_api.route_limit(config.web)
            )
            server.start()
        log.info(
            "hq running: role %s, %d ingest worker(s), web %s",
            role,
            len(workers),
            config.web.listen if server else "off",
        )
        systemd.ready(f"role {role}, {len(workers)} worker(s)")
        _supervise(stop, storage)
    finally:
        systemd.stopping()
        if server is not None:
            server.stop()
        if recomputer is not None:
            recomputer.stop()
        for worker in workers:
            worker.stop()
        storage.close()


def _supervise(stop: threading.Event, storage: Storage) -> None:
    interval = systemd.watchdog_interval_s() or 5.0
    while not stop.wait(interval):
        try:
            storage.ping()
        except Exception:  # a dead database must show as a missed watchdog, not a crash loop
            log.exception("the database does not answer; not pinging the watchdog")
            continue
        systemd.watchdog()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
