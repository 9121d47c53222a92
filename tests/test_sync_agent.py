"""The sync agent end to end: outbox -> real Mosquitto -> a stand-in HQ -> acks -> outbox empty."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.config import MqttSection
from common.mqtt import Message, MqttClient
from contract import topics
from contract.envelope import BATCH_CONTENT_TYPE
from sync import state
from sync.agent import Agent, status_due
from sync.downlink import DownlinkStore
from sync.outbox import Outbox
from tests.acknowledger import Acknowledger, signed_ack
from tests.conftest import SOURCE, wait_until
from tests.kiosk_support import edge_config
from touchpoint.services import Mosquitto

DEVICE = topics.DeviceTopics("test-store", "mirror-1")


def fill(outbox: Outbox, count: int, size: int = 20) -> None:
    outbox.append_many([("session.started", {"session_id": "s" * size})] * count)


@contextmanager
def running(tmp_path: Path, broker: Mosquitto, **mqtt: Any) -> Iterator[Agent]:
    """The agent on its own thread, stopped (as SIGTERM would) when the block ends."""
    config = edge_config(tmp_path, mqtt={"url": broker.url, **mqtt})
    agent = Agent(config)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        yield agent
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


def depth(tmp_path: Path) -> int:
    box = Outbox(tmp_path / "edge.db", SOURCE)
    try:
        return box.stats().depth
    finally:
        box.close()


def emptied(outbox: Outbox) -> bool:
    """Whether the agent (another connection) deletes every event before a generous deadline."""
    return wait_until(lambda: outbox.stats().depth == 0)


def test_batches_go_out_in_seq_order_within_count_and_size(
    tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox
) -> None:
    fill(outbox, 1000, size=200)
    with Acknowledger(mosquitto.url) as hq, running(tmp_path, mosquitto, batch_events=64, batch_bytes=8192):
        assert hq.wait_for(lambda: hq.contiguous.get(DEVICE.ack) == 1000)
        assert emptied(outbox)
    flat = [seq for batch in hq.batches for seq in batch]
    assert flat == list(range(1, 1001))  # nothing lost, nothing resent, in order
    assert all(batch == list(range(batch[0], batch[-1] + 1)) for batch in hq.batches)
    assert max(len(batch) for batch in hq.batches) <= 64
    assert max(hq.payload_sizes) <= 8192
    assert hq.content_types == {BATCH_CONTENT_TYPE}
    assert depth(tmp_path) == 0


def test_nothing_leaves_the_outbox_before_hq_acknowledges(tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox) -> None:
    fill(outbox, 300)
    with Acknowledger(mosquitto.url) as hq:
        hq.paused = True
        with running(tmp_path, mosquitto, batch_events=50, inflight_batches=3):
            assert hq.wait_for(lambda: hq.received >= 150)
            assert outbox.stats().depth == 300  # received by HQ, but not acknowledged
            assert hq.received == 150  # the window holds at most 3 batches of 50
            hq.resume()
            assert hq.wait_for(lambda: hq.contiguous.get(DEVICE.ack) == 300)
            assert emptied(outbox)
    assert hq.seqs() == list(range(1, 301))


def test_unacknowledged_batches_are_sent_again_after_the_timeout(
    tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox
) -> None:
    fill(outbox, 100)
    with Acknowledger(mosquitto.url) as hq:
        hq.drop_next = 1  # HQ "crashes" before committing the first batch
        with running(tmp_path, mosquitto, batch_events=10, ack_timeout_s=1):
            assert hq.wait_for(lambda: hq.contiguous.get(DEVICE.ack) == 100)
            assert emptied(outbox)
    assert hq.batches[0] == list(range(1, 11))
    assert [batch for batch in hq.batches if batch[0] == 1] == [list(range(1, 11))] * 2  # sent again
    assert hq.seqs() == list(range(1, 101))


def test_broker_restarts_mid_stream_lose_nothing(tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox) -> None:
    with Acknowledger(mosquitto.url) as hq, running(tmp_path, mosquitto, batch_events=20, ack_timeout_s=1):
        for round_ in range(3):
            fill(outbox, 400)
            assert hq.wait_for(lambda round_=round_: hq.received > round_ * 400 + 50)
            mosquitto.kill() if round_ % 2 else mosquitto.stop()
            fill(outbox, 100)  # the screen keeps recording while the broker is away
            mosquitto.start()
        assert hq.wait_for(lambda: hq.contiguous.get(DEVICE.ack) == 1500, timeout=60)
        assert emptied(outbox)
    assert hq.seqs() == list(range(1, 1501))  # every seq exactly once, after dedupe by id
    assert len({(e["source"], e["seq"]) for e in hq.events.values()}) == 1500


def test_status_is_retained_online_then_offline_and_state_is_recorded(
    tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox
) -> None:
    fill(outbox, 5)
    statuses: queue.Queue[Message] = queue.Queue()
    watcher = MqttClient(MqttSection(url=mosquitto.url), "watcher", on_message=statuses.put)
    watcher.subscribe([(DEVICE.status, 1)])
    with Acknowledger(mosquitto.url) as hq, watcher:
        with running(tmp_path, mosquitto):
            online = json.loads(statuses.get(timeout=10).payload)
            assert hq.wait_for(lambda: hq.contiguous.get(DEVICE.ack) == 5)
            assert emptied(outbox)
        while (last := json.loads(statuses.get(timeout=10).payload))["state"] != "offline":
            pass
    assert online["state"] == "online" and online["last_seq"] == 5
    assert set(online) == {
        "state",
        "time",
        "backlog",
        "oldest_age_s",
        "last_seq",
        "acked_upto",
        "dropped",
        "unrecoverable",
    }
    assert (last["backlog"], last["acked_upto"], last["last_seq"]) == (0, 5, 5)
    recorded = state.read(tmp_path / "edge.db")
    assert recorded is not None
    assert (recorded.state, recorded.acked_upto, recorded.last_error) == ("closed", 5, "")
    assert recorded.last_ack_at is not None and recorded.last_publish_at is not None


def test_downlink_is_applied_and_bad_messages_do_not_stop_the_agent(
    tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox
) -> None:
    with MqttClient(MqttSection(url=mosquitto.url), "hq-downlink") as hq:
        assert hq.wait_connected(10)
        hq.publish(DEVICE.downlink("config"), b'{"version": "2", "mode": "mirror"}', retain=True).wait(10)
        with Acknowledger(mosquitto.url) as acks, running(tmp_path, mosquitto) as agent:
            assert wait_until(lambda: agent.downlink.version("config") == "2")
            for bad in (b"{oops", b'{"version": "1", "mode": "old"}', b'{"version": "3", "products": 1}'):
                hq.publish(DEVICE.downlink("config"), bad, retain=True).wait(10)
                hq.publish(DEVICE.downlink("catalog"), bad, retain=True).wait(10)
            hq.publish(DEVICE.downlink("recommendations"), b'{"version": "r1", "pairs": []}', retain=True).wait(10)
            assert wait_until(lambda: agent.downlink.version("recommendations") == "r1")
            fill(outbox, 3)  # still syncing after the bad messages
            assert acks.wait_for(lambda: acks.contiguous.get(DEVICE.ack) == 3)
    stored = DownlinkStore(tmp_path / "edge.db")
    try:
        assert stored.get("config") == {"version": "3", "products": 1}
        assert stored.get("catalog") is None
    finally:
        stored.close()
    recorded = state.read(tmp_path / "edge.db")
    assert recorded is not None and "catalog" in recorded.last_error


def test_mqtt_311_mode_syncs_too(tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox) -> None:
    fill(outbox, 50)
    with Acknowledger(mosquitto.url, protocol="3.1.1") as hq, running(tmp_path, mosquitto, protocol="3.1.1"):
        assert hq.wait_for(lambda: hq.contiguous.get(DEVICE.ack) == 50)
    assert hq.content_types == {None}
    assert hq.seqs() == list(range(1, 51))


def test_an_ack_beyond_our_last_seq_deletes_nothing(tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox) -> None:
    """A retained ack about another database (the device's was replaced) must not empty this one."""
    fill(outbox, 10)
    with MqttClient(MqttSection(url=mosquitto.url), "stale-hq") as hq:
        assert hq.wait_connected(10)
        hq.publish(DEVICE.ack, signed_ack(DEVICE, 5000), retain=True).wait(10)
        received: queue.Queue[Message] = queue.Queue()
        spy = MqttClient(MqttSection(url=mosquitto.url), "spy", on_message=received.put)
        spy.subscribe([(DEVICE.events, 1)])
        with spy, running(tmp_path, mosquitto):
            assert [e["seq"] for e in json.loads(received.get(timeout=10).payload)] == list(range(1, 11))
    assert depth(tmp_path) == 10
    recorded = state.read(tmp_path / "edge.db")
    assert recorded is not None and "beyond our last seq" in recorded.last_error


def test_status_is_due_on_start_periodically_and_on_big_backlog_moves() -> None:
    assert status_due(0, None, 0, 0)
    assert not status_due(10, 0, 50, 0)
    assert status_due(10, 0, 100, 0)
    assert not status_due(0.5, 0, 100, 0)  # at most once a second
    assert status_due(30, 0, 0, 0)
    assert not status_due(10, 0, 10_500, 10_000) and status_due(10, 0, 11_000, 10_000)


def test_offline_the_agent_keeps_the_events_and_says_why(tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox) -> None:
    mosquitto.stop()
    with running(tmp_path, mosquitto):
        fill(outbox, 200)

        def offline_recorded() -> bool:
            recorded = state.read(tmp_path / "edge.db")
            return recorded is not None and "Connection refused" in recorded.last_error

        assert wait_until(offline_recorded)
        recorded = state.read(tmp_path / "edge.db")
        assert recorded is not None and not recorded.connected and recorded.last_publish_at is None
        assert outbox.stats().depth == 200
        mosquitto.start()
        with Acknowledger(mosquitto.url) as hq:
            assert hq.wait_for(lambda: hq.contiguous.get(DEVICE.ack) == 200, timeout=60)
            assert emptied(outbox)
            assert wait_until(lambda: (s := state.read(tmp_path / "edge.db")) is not None and s.connected)
            recorded = state.read(tmp_path / "edge.db")
            assert recorded is not None and recorded.last_error == "" and recorded.last_error_at is not None
