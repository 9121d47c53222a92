"""A test-only stand-in for HQ's ingestor, speaking the MQTT contract and nothing more.

It records every received event by id, and publishes the retained ``ack`` with the highest
contiguous ``seq`` per device, as HQ does after its commit. Tests can pause acks, drop the next
few batches (as if HQ crashed before committing them) and wait for conditions.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from common.config import MqttSection
from common.mqtt import Message, MqttClient
from contract import acks, topics

ACK_SECRET = "touchpoint-tests-ack-secret-0123456789"  # [hq] ack_secret of every test and benchmark


def ack_key(store: str = "test-store", device: str = "mirror-1") -> str:
    """The device's ``[mqtt] ack_key`` under ACK_SECRET."""
    return acks.device_key(ACK_SECRET, store, device)


def signed_ack(
    device: topics.DeviceTopics, upto: int, ranges: tuple[acks.Range, ...] = (), secret: str = ACK_SECRET
) -> bytes:
    """An ack as HQ signs it, stamped now."""
    ack = acks.Ack(upto, time.time_ns() // 1000, ranges)
    return ack.encode(acks.device_key(secret, device.store, device.device), device.store, device.device)


class Acknowledger:
    def __init__(self, url: str, *, protocol: str = "5", client_id: str = "test-hq", record: bool = True) -> None:
        self.record = record  # False keeps counters only, for long benchmark runs
        self.events: dict[str, dict[str, Any]] = {}  # id -> event, deduplicated as HQ does
        self.received = 0  # events received, duplicates included
        self.batches: list[list[int]] = []  # the seqs of each received batch, in arrival order
        self.payload_sizes: list[int] = []
        self.content_types: set[str | None] = set()
        self.contiguous: dict[str, int] = {}  # topic of the ack -> highest contiguous seq
        self.devices: dict[str, topics.DeviceTopics] = {}  # topic of the ack -> its device
        self._seqs: dict[str, set[int]] = {}
        self.paused = False
        self.drop_next = 0
        self._changed = threading.Condition()
        self.client = MqttClient(MqttSection(url=url, protocol=protocol), client_id, on_message=self._receive)
        self.client.subscribe([("touchpoint/v1/+/+/events", 1)])

    def start(self) -> Acknowledger:
        self.client.start()
        if not self.client.wait_connected(10):
            raise AssertionError(f"acknowledger could not connect: {self.client.last_error}")
        return self

    def stop(self) -> None:
        self.client.stop()

    def __enter__(self) -> Acknowledger:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _receive(self, message: Message) -> None:
        parsed = topics.parse(message.topic)
        assert parsed is not None and parsed.kind == "events", message.topic
        batch = json.loads(message.payload)
        device = topics.DeviceTopics(parsed.store, parsed.device or "")
        ack_topic = device.ack
        with self._changed:
            self.devices[ack_topic] = device
            self.batches.append([event["seq"] for event in batch])
            self.payload_sizes.append(len(message.payload))
            self.content_types.add(message.content_type)
            if self.drop_next:
                self.drop_next -= 1
                self._changed.notify_all()
                return
            self.received += len(batch)
            seqs = self._seqs.setdefault(ack_topic, set())
            upto = self.contiguous.get(ack_topic, 0)
            for event in batch:
                if self.record:
                    self.events[event["id"]] = event
                if event["seq"] > upto:
                    seqs.add(event["seq"])
            while upto + 1 in seqs:
                upto += 1
                seqs.discard(upto)
            self.contiguous[ack_topic] = upto
            self._changed.notify_all()
            payload = signed_ack(device, upto)  # stamped under the lock, so in the order of the counts
        if not self.paused:
            self.client.publish(ack_topic, payload, qos=1, retain=True)

    def resume(self) -> None:
        """Stop pausing and acknowledge what arrived meanwhile."""
        self.paused = False
        for ack_topic, upto in dict(self.contiguous).items():
            self.client.publish(ack_topic, signed_ack(self.devices[ack_topic], upto), qos=1, retain=True)

    def seqs(self) -> list[int]:
        """The seqs of the distinct events received, sorted."""
        with self._changed:
            return sorted(event["seq"] for event in self.events.values())

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(condition, timeout)
