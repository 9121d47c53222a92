"""Helpers for the HQ tests: edge events, storages over both backends, an MQTT listener."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hq.storage import Storage, open_storage
from sync.envelope import edge_source, make_event
from sync.mqtt import Message, MqttClient
from sync.topics import DeviceTopics
from touchpoint.config import MqttSection

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
        event = make_event("product.viewed", {"session_id": f"s{seq}", "gtin": "80614141123458", "via": "tag"},
                           source=source, seq=seq, time=NOW)
        event["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}#{seq}"))
        made.append(event)
    return made


def payload(batch: list[Any]) -> bytes:
    return json.dumps(batch).encode()


def events_topic(device: DeviceTopics = DEVICE) -> str:
    return device.events


def make_storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    """A fresh storage of either backend (the postgres one in a new database)."""
    if backend == "sqlite":
        return open_storage(f"sqlite:///{tmp_path}/hq.db")
    return open_storage(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store = make_storage(request.param, tmp_path, request)
    yield store
    store.close()


class Listener:
    """An MQTT client that queues what it receives on ``topics``."""

    def __init__(self, url: str, topics: list[str], client_id: str = "test-listener", **mqtt: str) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.client = MqttClient(MqttSection(url=url, **mqtt), client_id, on_message=self.messages.put)
        self.client.subscribe([(topic, 1) for topic in topics])

    def __enter__(self) -> Listener:
        self.client.start()
        assert self.client.wait_connected(10), self.client.last_error
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()

    def next(self, timeout: float = 10.0) -> Message:
        return self.messages.get(timeout=timeout)

    def ack(self, timeout: float = 10.0) -> int:
        """The ``upto`` of the next message, which must be an ack."""
        message = self.next(timeout)
        assert message.topic.endswith("/ack"), message.topic
        return int(json.loads(message.payload)["upto"])
