"""The sync agent and HQ's signed acks through a real Mosquitto: forged acks delete nothing, keys rotate,
and an HQ that lost data it had acknowledged gets what the outbox still holds, while the rest is reported."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from common.config import MqttSection
from common.errors import ConfigError
from common.mqtt import Message, MqttClient
from common.webserver import MONITORING
from contract import acks
from sync import state
from sync.agent import Agent
from sync.outbox import Outbox
from tests.acknowledger import ACK_SECRET, ack_key, signed_ack
from tests.conftest import wait_until
from tests.kiosk_support import edge_config
from tests.test_sync_agent import DEVICE, fill, running
from touchpoint.services import Mosquitto

NEXT_SECRET = "the-next-ack-secret-after-a-rotation-0123"


def agent_running(tmp_path: Path, broker: Mosquitto, **mqtt: Any) -> AbstractContextManager[Agent]:
    """The agent on its own thread, HQ's resend timer long: any resend seen is the agent's own choice."""
    return running(tmp_path, broker, **{"ack_timeout_s": 120, **mqtt})


@contextmanager
def hq_stand_in(broker: Mosquitto) -> Iterator[tuple[MqttClient, queue.Queue[Message]]]:
    """A client that publishes acks by hand and sees every batch and status the device sends."""
    seen: queue.Queue[Message] = queue.Queue()
    client = MqttClient(MqttSection(url=broker.url), "hand-hq", on_message=seen.put)
    client.subscribe([(DEVICE.events, 1), (DEVICE.status, 1)])
    with client:
        assert client.wait_connected(10)
        yield client, seen


def batches(seen: queue.Queue[Message], timeout: float = 10.0) -> Iterator[list[int]]:
    """The seqs of each batch the device publishes from now on (statuses skipped)."""
    while True:
        message = seen.get(timeout=timeout)
        if message.topic == DEVICE.events:
            yield [event["seq"] for event in json.loads(message.payload)]


def recorded(tmp_path: Path) -> state.SyncState:
    found = state.read(tmp_path / "edge.db")
    assert found is not None
    return found


def test_a_forged_or_foreign_ack_deletes_nothing_and_is_counted(
    tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox, client: FlaskClient
) -> None:
    fill(outbox, 15)
    other_device = acks.device_key(ACK_SECRET, "test-store", "mirror-2")
    with hq_stand_in(mosquitto) as (hq, seen), agent_running(tmp_path, mosquitto):
        assert next(batches(seen)) == list(range(1, 16))
        hq.publish(DEVICE.ack, b'{"upto": 15}', retain=True).wait(10)  # the attack
        wrong = acks.Ack(15, 1, ()).encode(other_device, "test-store", "mirror-1")
        hq.publish(DEVICE.ack, wrong, retain=True).wait(10)
        assert wait_until(lambda: recorded(tmp_path).refused_acks == 2)
        assert outbox.stats().depth == 15
        assert "ack refused (bad-signature)" in recorded(tmp_path).last_error
        hq.publish(DEVICE.ack, signed_ack(DEVICE, 10), retain=True).wait(10)  # HQ's own
        assert wait_until(lambda: outbox.stats().depth == 5)
    # the edge app on the same outbox file, scraped as through [web] metrics_listen
    metrics = client.get("/metrics", environ_base={MONITORING: True}).get_data(as_text=True)
    assert "touchpoint_edge_sync_acks_refused_total 2.0" in metrics


def test_an_agent_without_a_key_refuses_to_start(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with pytest.raises(ConfigError, match="touchpoint hq device-key test-store mirror-1"):
        Agent(edge_config(tmp_path, mqtt={"url": mosquitto.url, "ack_key": ""}))


def test_during_a_key_rotation_acks_under_either_key_count(
    tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox
) -> None:
    """The steps of README's rotation: the device takes the new key and keeps the old as previous,
    HQ switches its secret, the device drops the old key."""
    fill(outbox, 30)
    new_key = acks.device_key(NEXT_SECRET, DEVICE.store, DEVICE.device)
    with hq_stand_in(mosquitto) as (hq, seen):
        with agent_running(tmp_path, mosquitto, ack_key=new_key, ack_key_previous=ack_key()):
            next(batches(seen))
            hq.publish(DEVICE.ack, signed_ack(DEVICE, 10), retain=True).wait(10)  # HQ still on the old secret
            assert wait_until(lambda: outbox.stats().depth == 20)
            hq.publish(DEVICE.ack, signed_ack(DEVICE, 20, secret=NEXT_SECRET), retain=True).wait(10)
            assert wait_until(lambda: outbox.stats().depth == 10)
        with agent_running(tmp_path, mosquitto, ack_key=new_key):
            hq.publish(DEVICE.ack, signed_ack(DEVICE, 30), retain=True).wait(10)  # the old secret, now refused
            # >= 1: the broker may deliver it twice, queued for the kept session and as the retained message
            assert wait_until(lambda: recorded(tmp_path).refused_acks >= 1)
            assert outbox.stats().depth == 10
            hq.publish(DEVICE.ack, signed_ack(DEVICE, 30, secret=NEXT_SECRET), retain=True).wait(10)
            assert wait_until(lambda: outbox.stats().depth == 0)


def test_an_hq_that_lost_acknowledged_events_gets_the_rest_and_the_loss_is_reported(
    tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox
) -> None:
    fill(outbox, 20)
    with hq_stand_in(mosquitto) as (hq, seen), agent_running(tmp_path, mosquitto, batch_events=10):
        sent = batches(seen)
        assert [next(sent), next(sent)] == [list(range(1, 11)), list(range(11, 21))]
        old = signed_ack(DEVICE, 20)  # an attacker records this one
        hq.publish(DEVICE.ack, old, retain=True).wait(10)
        assert wait_until(lambda: outbox.stats().depth == 0)
        fill(outbox, 10)
        assert next(sent) == list(range(21, 31))
        # HQ restored a backup from before seq 11: its ack is lower than the device believed, but newer.
        hq.publish(DEVICE.ack, signed_ack(DEVICE, 10), retain=True).wait(10)
        assert next(sent) == list(range(21, 31))  # resent at once, long before ack_timeout_s
        assert wait_until(lambda: recorded(tmp_path).unrecoverable == ((11, 20),))
        assert "HQ lacks 10 events this device no longer holds (seq 11..20)" in recorded(tmp_path).last_error
        # HQ now holds 21..30 above its gap: the outbox drains although HQ's contiguous seq stays at 10.
        hq.publish(DEVICE.ack, signed_ack(DEVICE, 10, ranges=((21, 30),)), retain=True).wait(10)
        assert wait_until(lambda: outbox.stats().depth == 0)
        fill(outbox, 1)
        assert next(sent) == [31]
        hq.publish(DEVICE.ack, old, retain=True).wait(10)  # a replay of the old ack: no resend, no new loss
        hq.publish(DEVICE.ack, b'{"upto": 31}', retain=True).wait(10)  # refused: marks that the replay was read
        assert wait_until(lambda: recorded(tmp_path).refused_acks == 1)
        assert recorded(tmp_path).unrecoverable == ((11, 20),) and outbox.stats().depth == 1
        with pytest.raises(queue.Empty):
            next(batches(seen, timeout=1.0))
    statuses = [json.loads(m.payload) for m in drained(seen) if m.topic == DEVICE.status]
    assert [11, 20] in statuses[-1]["unrecoverable"]  # the offline status still says so


def drained(seen: queue.Queue[Message]) -> list[Message]:
    items = []
    while not seen.empty():
        items.append(seen.get_nowait())
    return items
