"""The MQTT ingest worker: uplink messages in, rows committed, acks out.

:class:`Ingestor` is the logic (parse, store, decide the ack) and needs no broker;
:class:`IngestWorker` connects it to one MQTT client in the shared subscription. Messages are
handled on the client's network thread, so the broker gets its PUBACK only after the commit:
several workers are how HQ ingests in parallel.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from common.config import MqttSection
from common.errors import ConfigError
from common.mqtt import ConnectionState, Message, MqttClient
from contract import acks
from contract.topics import DeviceTopics, parse
from hq.core.intake import DEFAULT_BOUNDS, Bounds, Refused, parse_events, parse_status
from hq.core.records import DeadLetter
from hq.prometheus import HqMetrics
from hq.storage import Storage

log = logging.getLogger(__name__)

EVENTS = "touchpoint/v1/+/+/events"
STATUS = "touchpoint/v1/+/+/status"


def events_subscription(share_group: str) -> str:
    """Shared, so the broker hands each batch to one worker of the group; plain when no group."""
    return f"$share/{share_group}/{EVENTS}" if share_group else EVENTS


@dataclass(frozen=True)
class Ack:
    """What to publish, retained, once a device batch is committed: signed with the device's key."""

    device: DeviceTopics
    ack: acks.Ack
    key: str

    @property
    def topic(self) -> str:
        return self.device.ack

    @property
    def upto(self) -> int:
        return self.ack.upto

    @property
    def payload(self) -> bytes:
        return self.ack.encode(self.key, self.device.store, self.device.device)


class AckSigner:
    """Each device's key from ``[hq] ack_secret`` (contract.acks.device_key), derived once per device."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigError("hq.ack_secret", "", "a secret of at least 32 characters: HQ signs every ack with it")
        self.secret = secret
        self._keys: dict[tuple[str, str], str] = {}

    def key(self, device: DeviceTopics) -> str:
        pair = (device.store, device.device)
        if pair not in self._keys:
            self._keys[pair] = acks.device_key(self.secret, *pair)
        return self._keys[pair]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Ingestor:
    """Stores what one message carries and says which ack, if any, to publish."""

    def __init__(self, storage: Storage, metrics: HqMetrics, ack_secret: str, bounds: Bounds = DEFAULT_BOUNDS) -> None:
        self.storage = storage
        self.metrics = metrics
        self.signer = AckSigner(ack_secret)
        self.bounds = bounds
        # Each device's contiguous seq as last seen, for the seq window. Behind only when other
        # workers took its batches since; a refusal then asks the database before it stands.
        self._contiguous: dict[DeviceTopics, int] = {}

    def handle(self, topic: str, payload: bytes, now: datetime) -> Ack | None:
        """Raises only when the database fails; then nothing is acknowledged."""
        parsed = parse(topic)
        if parsed is not None and parsed.kind == "status":
            status = parse_status(topic, payload, now)
            if isinstance(status, Refused):
                self._dead_letters(status.dead)
            elif status is not None:
                self.storage.record_status(status)
            return None
        batch = parse_events(topic, payload, now, self.bounds, self._known_contiguous)
        if not isinstance(batch, Refused) and any(
            d.reason.startswith("seq: ") and "beyond" in d.reason for d in batch.dead
        ):
            self._refresh_contiguous()
            batch = parse_events(topic, payload, now, self.bounds, self._known_contiguous)
        if isinstance(batch, Refused):
            self._dead_letters(batch.dead)
            return None
        outcome = self.storage.store_device_batch(batch)
        self.metrics.batches.inc()
        self._count_dead(batch.dead)
        self.metrics.stored.inc(outcome.stored)
        self.metrics.duplicates.inc(outcome.duplicates)
        self.metrics.window.add(outcome.stored, now.timestamp())
        for name, count in Counter(row.type for row in batch.events).items():
            self.metrics.events.labels(name).inc(count)
        self._contiguous[batch.device] = outcome.contiguous_seq
        if outcome.contiguous_seq < 1:
            return None
        signed = acks.Ack(outcome.contiguous_seq, outcome.committed_at_us, outcome.ranges[: acks.MAX_RANGES])
        return Ack(batch.device, signed, self.signer.key(batch.device))

    def _known_contiguous(self, device: DeviceTopics) -> int:
        if device not in self._contiguous:
            self._refresh_contiguous()
        return self._contiguous.get(device, 0)

    def _refresh_contiguous(self) -> None:
        """Every device's contiguous seq from the database (a new device, or a seq far ahead)."""
        self._contiguous.update({DeviceTopics(d.store, d.device): d.contiguous_seq for d in self.storage.devices()})

    def _dead_letters(self, letters: tuple[DeadLetter, ...]) -> None:
        self.storage.store_dead_letters(letters)
        self._count_dead(letters)

    def _count_dead(self, letters: tuple[DeadLetter, ...]) -> None:
        for letter in letters:
            log.warning("dead letter from %s: %s", letter.topic, letter.reason)
            self.metrics.dead_letters.labels(letter.kind).inc()


class IngestWorker:
    """One MQTT client in the shared subscription, feeding an :class:`Ingestor`."""

    def __init__(
        self,
        settings: MqttSection,
        client_id: str,
        ingestor: Ingestor,
        *,
        share_group: str = "touchpoint-hq",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.ingestor = ingestor
        self.subscription = events_subscription(share_group)
        self.clock = clock
        # A stable client id (hq.server.client_id) with a persistent session: the broker queues the
        # batches it hands this worker while it is down and delivers them when it is back, so a
        # restart costs no edge a resend. A worker that never comes back strands its queue until
        # [mqtt] session_expiry_s; the edges resend what stays unacknowledged meanwhile.
        self.client = MqttClient(settings, client_id, on_message=self._on_message)

    @property
    def connected(self) -> bool:
        return self.client.state is ConnectionState.CONNECTED

    def start(self) -> IngestWorker:
        self.client.subscribe([(self.subscription, 1), (STATUS, 1)])
        self.client.start()
        return self

    def stop(self) -> None:
        self.client.stop()

    def _on_message(self, message: Message) -> None:
        started = time.monotonic()
        try:
            ack = self.ingestor.handle(message.topic, message.payload, self.clock())
        except Exception:
            self.ingestor.metrics.storage_errors.inc()
            log.exception("could not store a message from %s; the device will re-send it", message.topic)
            return
        if ack is not None:
            self.client.publish(ack.topic, ack.payload, qos=1, retain=True)
            self.ingestor.metrics.ack_latency.observe(time.monotonic() - started)
