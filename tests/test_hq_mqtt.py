"""The ingestor through a real Mosquitto: stored, then acknowledged (retained), never twice."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from contract.envelope import MAX_EVENT_BYTES
from contract.topics import DeviceTopics
from hq.core.records import DeviceReport
from hq.storage import Storage, open_storage
from tests.conftest import make_storage
from tests.hq_support import DEVICE, Peer, events, payload, running_worker, terminate_other_backends, wait_until
from touchpoint.services import Mosquitto


def report(storage: Storage, device: DeviceTopics = DEVICE) -> DeviceReport | None:
    """The device's row of GET /v1/devices, None while HQ has not heard of it."""
    return next((d for d in storage.devices() if (d.store, d.device) == (device.store, device.device)), None)


def device_row(storage: Storage, device: DeviceTopics = DEVICE) -> DeviceReport:
    row = report(storage, device)
    assert row is not None, device
    return row


def test_a_batch_is_stored_then_acknowledged_retained(mosquitto: Mosquitto, storage: Storage) -> None:
    with (
        running_worker(mosquitto.url, storage),
        Peer(mosquitto.url, [DEVICE.ack], "test-listener") as acks,
        Peer(mosquitto.url) as device,
    ):
        device.send(DEVICE.events, payload(events(range(1, 6))))
        assert acks.ack() == 5
        # The ack went out after the commit: everything it covers is already readable.
        assert device_row(storage).stored == 5 and device_row(storage).contiguous_seq == 5
        device.send(DEVICE.events, payload(events(range(1, 6))))  # a re-send, as after a lost ack
        assert acks.ack() == 5
    assert device_row(storage).stored == 5
    assert storage.fetchall("SELECT COUNT(*) FROM events") == [(5,)]
    # A device that restarts with a fresh session still learns its ack: it is retained.
    with Peer(mosquitto.url, [DEVICE.ack], "restarted-device") as late:
        message = late.next()
    assert message.retain and json.loads(message.payload)["upto"] == 5
    assert set(json.loads(message.payload)) == {"upto", "ranges", "at_us", "sig"}


@pytest.mark.parametrize("share_group", ["touchpoint-hq", ""])
def test_out_of_order_batches_are_acknowledged_only_up_to_the_gap(
    mosquitto: Mosquitto, storage: Storage, share_group: str
) -> None:
    """Also with a plain subscription, for brokers without shared subscriptions (amqtt)."""
    with (
        running_worker(mosquitto.url, storage, share_group=share_group),
        Peer(mosquitto.url, [DEVICE.ack], "test-listener") as acks,
        Peer(mosquitto.url) as device,
    ):
        device.send(DEVICE.events, payload(events([1, 2])))
        assert acks.ack() == 2
        device.send(DEVICE.events, payload(events([5, 6])))
        above_the_gap = acks.signed_ack()
        assert (above_the_gap.upto, above_the_gap.ranges) == (2, ((5, 6),))
        assert device_row(storage).gaps == ((3, 4),)
        device.send(DEVICE.events, payload(events([3, 4])))
        assert acks.ack() == 6
    row = device_row(storage)
    assert (row.contiguous_seq, row.stored, row.gaps) == (6, 6, ())


def test_bad_input_is_dead_lettered_and_ingestion_goes_on(mosquitto: Mosquitto, storage: Storage) -> None:
    sent = events(range(1, 8))
    sent[1].pop("id")  # missing attribute
    sent[2]["source"] = "/stores/test-store/devices/mirror-2"  # another device's source
    sent[3]["type"] = "touchpoint.tag.teleported"  # unknown type
    sent[4]["data"]["padding"] = "x" * MAX_EVENT_BYTES  # oversized
    with (
        running_worker(mosquitto.url, storage) as worker,
        Peer(mosquitto.url, [DEVICE.ack], "test-listener") as acks,
        Peer(mosquitto.url) as device,
    ):
        device.send(DEVICE.events, b'[{"specversion": "1.0", "id": ')  # invalid JSON
        device.send(DEVICE.events, payload(sent))
        # seq 3 claimed another device, so it is not closed: the ack stops before it.
        assert acks.ack() == 2
        device.send(DEVICE.events, payload(events([3, 8])))
        assert acks.ack() == 8
    reasons = [d.reason for d in reversed(storage.dead_letters())]
    assert [r.split(":")[0] for r in reasons] == ["json", "id", "source does not match topic", "type", "size"]
    assert storage.dead_letters()[-1].raw == b'[{"specversion": "1.0", "id": '
    assert device_row(storage).stored == 5  # 1, 6, 7, then 3 and 8
    registry = worker.ingestor.metrics.registry
    assert registry.get_sample_value("touchpoint_hq_dead_letters_total", {"reason": "json"}) == 1
    assert registry.get_sample_value("touchpoint_hq_events_stored_total") == 5
    assert registry.get_sample_value("touchpoint_hq_events_ingested_total", {"type": "touchpoint.product.viewed"}) == 5
    assert registry.get_sample_value("touchpoint_hq_ingest_rate") == 5 / 60  # within the last minute


@pytest.mark.postgres
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_two_workers_share_the_subscription_and_store_each_event_once(
    mosquitto: Mosquitto, tmp_path: Path, request: pytest.FixtureRequest, protocol: str
) -> None:
    """Both workers take batches (Mosquitto shares over MQTT 5 and 3.1.1 alike) into one database."""
    storages = [make_storage("postgres", tmp_path, request) for _ in range(2)]
    devices = [DeviceTopics("store-1", f"mirror-{n}") for n in range(3)]
    per_device = 300
    rng = random.Random(3)
    try:
        with (
            running_worker(mosquitto.url, storages[0], "hq-test-1", protocol) as one,
            running_worker(mosquitto.url, storages[1], "hq-test-2", protocol) as two,
            Peer(mosquitto.url, protocol=protocol) as publisher,
        ):
            for device in devices:
                batches = [list(range(s, s + 15)) for s in range(1, per_device + 1, 15)]
                batches += rng.sample(batches, 5)  # re-sends
                rng.shuffle(batches)
                for seqs in batches:
                    publisher.send(device.events, payload(events(seqs, device)))
            wait_until(
                lambda: all(getattr(report(storages[0], d), "contiguous_seq", 0) == per_device for d in devices),
                what="every device contiguous",
            )
        for worker in (one, two):
            assert worker.ingestor.metrics.registry.get_sample_value("touchpoint_hq_batches_total") > 0
        for device in devices:
            row = device_row(storages[1], device)
            assert (row.stored, row.gaps) == (per_device, ())
        assert storages[0].fetchall("SELECT COUNT(*), COUNT(DISTINCT (source, seq)) FROM events") == [
            (per_device * 3, per_device * 3)
        ]
    finally:
        for each in storages:
            each.close()


@pytest.mark.postgres
def test_a_batch_the_database_failed_is_not_acknowledged_and_its_resend_is(
    mosquitto: Mosquitto, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    storage = make_storage("postgres", tmp_path, request)
    try:
        with (
            running_worker(mosquitto.url, storage) as worker,
            Peer(mosquitto.url, [DEVICE.ack], "test-listener") as acks,
            Peer(mosquitto.url) as device,
        ):
            device.send(DEVICE.events, payload(events([1, 2])))
            assert acks.ack() == 2
            terminate_other_backends(storage)  # the worker's connection dies with the rest
            device.send(DEVICE.events, payload(events([3, 4])))
            device.send(DEVICE.events, payload(events([3, 4])))  # the edge's re-send after its ack timeout
            assert acks.ack() == 4  # no ack came for the failed attempt
        assert worker.ingestor.metrics.registry.get_sample_value("touchpoint_hq_storage_errors_total") == 1
    finally:
        storage.close()
    with open_storage(storage.url) as check:  # type: ignore[attr-defined]
        assert check.fetchall("SELECT COUNT(*) FROM events WHERE device = 'mirror-1'") == [(4,)]
