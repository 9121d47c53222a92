"""Personalisation back to the stores: the retained ``touchpoint/v1/{store}/recommendations``.

``recompute`` rebuilds every store's document from all stored events (``hq.analytics.journeys.
recommendation_messages``, a fresh identity graph with the API's consent statements) and
publishes each retained with QoS 1 through ``common.mqtt``. A customer's personal hints travel
only inside that document, keyed by the pseudonymous token, and only when their consent is
``granted`` (the core decides; a test listens on a real broker). :class:`Recomputer` runs it on
``[hq] recompute_interval_s`` and when asked (after an erasure or a consent change).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from common.config import HqConfig, MqttSection
from common.mqtt import MqttClient, MqttError
from contract.catalog import read_file, sample_path
from contract.topics import DeviceTopics
from hq.analytics.journeys import recommendation_messages
from hq.core.recommend import ProductLookup
from hq.storage import Storage

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
PUBLISH_TIMEOUT_S = 30.0


class PublishFailed(MqttError):
    """The broker was unreachable or did not acknowledge a recommendations message."""


@dataclass(frozen=True)
class Published:
    """One recompute: the stores whose message went out, and the customers with hints."""

    stores: tuple[str, ...]
    customers: int
    at: datetime


def catalog_of(config: HqConfig) -> ProductLookup:
    """``[hq] catalog``, or the bundled sample; raises CatalogError for a bad file."""
    path = Path(config.hq.catalog) if config.hq.catalog else sample_path()
    return read_file(path, str(path))


def topic(store: str) -> str:
    return DeviceTopics(store, "hq").downlink("recommendations")


Progress = Callable[[Iterable[str]], Iterable[str]]  # wraps the stores as they are done (a progress bar)


def build(
    storage: Storage, catalog: ProductLookup, now: datetime, *, progress: Progress = lambda stores: stores
) -> dict[str, dict]:
    """Store -> its recommendations document, from everything stored up to ``now``."""
    return recommendation_messages(storage, progress(storage.stores()), catalog, now)


def publish(
    settings: MqttSection,
    messages: dict[str, dict],
    *,
    progress: Progress = lambda stores: stores,
    connect_timeout_s: float | None = None,
) -> None:
    """Publish each store's document retained with QoS 1; raises PublishFailed unless every one
    was acknowledged by the broker."""
    client = MqttClient(settings, f"hq-recommend-{socket.gethostname()}-{os.getpid()}"[:128])
    client.start()
    try:
        if not client.wait_connected(connect_timeout_s or CONNECT_TIMEOUT_S):
            raise PublishFailed(f"broker {settings.url} unreachable: {client.last_error or 'no answer'}")
        for store in progress(sorted(messages)):
            payload = json.dumps(messages[store], ensure_ascii=False, separators=(",", ":")).encode()
            if not client.publish(topic(store), payload, qos=1, retain=True, content_type="application/json").wait(
                PUBLISH_TIMEOUT_S
            ):
                raise PublishFailed(f"{topic(store)}: the broker did not acknowledge it")
    finally:
        client.stop()


def recompute(
    config: HqConfig,
    storage: Storage,
    catalog: ProductLookup,
    now: datetime,
    *,
    building: Progress = lambda stores: stores,
    publishing: Progress = lambda stores: stores,
) -> Published:
    """Build and publish every store's document; raises PublishFailed (a store keeps its last
    message until the next one arrives whole)."""
    messages = build(storage, catalog, now, progress=building)
    publish(config.mqtt, messages, progress=publishing)
    customers = len({token for message in messages.values() for token in message["customers"]})
    return Published(tuple(sorted(messages)), customers, now)


class Recomputer:
    """A background thread: recompute every ``interval_s`` (0: only when asked) and on ``request()``."""

    def __init__(
        self, config: HqConfig, storage: Storage, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    ) -> None:
        self.config = config
        self.storage = storage
        self.clock = clock
        self.catalog = catalog_of(config)
        self.last: Published | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hq-recompute", daemon=True)

    def start(self) -> Recomputer:
        self._thread.start()
        return self

    def request(self) -> None:
        """Recompute soon (several requests in a row make one run)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5.0)  # a run in progress ends with the process (the thread is a daemon)

    def _run(self) -> None:
        interval = self.config.hq.recompute_interval_s or None
        while True:
            self._wake.wait(interval)
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.last = recompute(self.config, self.storage, self.catalog, self.clock())
                log.info("recommendations published to %d store(s)", len(self.last.stores))
            except Exception:  # a broker or database outage must not end the schedule
                log.exception("recomputing recommendations failed; trying again at the next interval")
