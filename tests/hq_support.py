"""Helpers for the HQ tests: edge events, storages over both backends, an MQTT listener."""

from __future__ import annotations

import dataclasses
import json
import queue
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pytest

from common.config import MqttSection
from common.mqtt import Message, MqttClient
from contract import acks
from contract.envelope import edge_source, make_event
from contract.topics import DeviceTopics, parse
from hq.mqtt.worker import Ingestor, IngestWorker
from hq.prometheus import HqMetrics
from hq.storage import Storage, open_storage
from tests.acknowledger import ACK_SECRET
from tests.conftest import wait_until as poll_until

DEVICE = DeviceTopics("test-store", "mirror-1")
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def events(seqs: Iterable[int], device: DeviceTopics = DEVICE) -> list[dict[str, Any]]:
    """Valid edge events of ``device`` with the given seqs (a product view each).

    The id is derived from source and seq, so a re-sent seq carries the same id, as the outbox's do.
    """
    source = edge_source(device.store, device.device)
    made = []
    for seq in seqs:
        event = make_event(
            "product.viewed",
            {"session_id": f"s{seq}", "gtin": "80614141123458", "via": "tag"},
            source=source,
            seq=seq,
            time=NOW,
        )
        event["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}#{seq}"))
        made.append(event)
    return made


def payload(batch: list[Any]) -> bytes:
    return json.dumps(batch).encode()


def events_topic(device: DeviceTopics = DEVICE) -> str:
    return device.events


class Peer:
    """An MQTT client for tests: queues what arrives on ``topics``, publishes and waits for PUBACK."""

    def __init__(self, url: str, topics: Iterable[str] = (), client_id: str = "test-device", **mqtt: str) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.client = MqttClient(MqttSection(url=url, **mqtt), client_id, on_message=self.messages.put)
        self.client.subscribe([(topic, 1) for topic in topics])

    def __enter__(self) -> Peer:
        self.client.start()
        assert self.client.wait_connected(10), self.client.last_error
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()

    def next(self, timeout: float = 10.0) -> Message:
        return self.messages.get(timeout=timeout)

    def ack(self, timeout: float = 10.0) -> int:
        """The ``upto`` of the next message, which must be an ack signed with its device's key."""
        return self.signed_ack(timeout).upto

    def signed_ack(self, timeout: float = 10.0) -> acks.Ack:
        """The next message, which must be an ack signed with its device's key."""
        message = self.next(timeout)
        parsed = parse(message.topic)
        assert parsed is not None and parsed.kind == "ack" and parsed.device, message.topic
        key = acks.device_key(ACK_SECRET, parsed.store, parsed.device)
        return acks.decode(message.payload, [key], parsed.store, parsed.device)

    def send(self, topic: str, body: bytes, retain: bool = False) -> None:
        assert self.client.publish(topic, body, retain=retain).wait(10), topic


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """``tests.conftest.wait_until`` that fails the test, naming ``what``, when the bound passes."""
    if not poll_until(condition, timeout):
        raise AssertionError(f"{what} did not happen within {timeout} s")


@contextmanager
def running_worker(
    url: str, storage: Storage, client_id: str = "hq-test-1", protocol: str = "5", share_group: str = "touchpoint-hq"
) -> Iterator[IngestWorker]:
    """An ingest worker whose subscriptions are known to be active when the block starts.

    A retained status message proves it: the broker delivers it only once the subscription exists.
    """
    worker = IngestWorker(
        MqttSection(url=url, protocol=protocol),
        client_id,
        Ingestor(storage, HqMetrics(), ACK_SECRET),
        share_group=share_group,
    ).start()
    try:
        probe = DeviceTopics("probe", client_id.lower().replace("_", "-")[:60])
        with Peer(url, client_id=f"probe-{client_id}") as publisher:
            publisher.send(probe.status, b'{"state": "online"}', retain=True)
            wait_until(lambda: any(d.device == probe.device for d in storage.devices()), what=f"{client_id} subscribed")
        yield worker
    finally:
        worker.stop()


def terminate_other_backends(storage: Storage) -> None:
    """What a PostgreSQL restart or failover does to every open connection."""
    with open_storage(storage.url) as admin:  # type: ignore[attr-defined]
        admin.fetchall(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def same(got: Any, want: Any, path: str = "report") -> None:
    """Equal field by field; floats to 1e-9 (the database sums in another order than fsum)."""
    if dataclasses.is_dataclass(got):
        for f in dataclasses.fields(got):
            same(getattr(got, f.name), getattr(want, f.name), f"{path}.{f.name}")
    elif isinstance(got, tuple) and not isinstance(got, str) and isinstance(want, tuple):
        assert len(got) == len(want), path
        for i, (a, b) in enumerate(zip(got, want)):
            same(a, b, f"{path}[{i}]")
    elif isinstance(got, float) or isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), path
    else:
        assert got == want, path
