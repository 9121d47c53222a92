"""`touchpoint sync` as a real process: SIGKILL at random moments loses nothing; SIGTERM goes offline."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

from common.config import MqttSection
from common.mqtt import Message, MqttClient
from contract import topics
from sync.outbox import Outbox
from tests.acknowledger import Acknowledger, ack_key
from tests.conftest import wait_until
from touchpoint.services import Mosquitto

DEVICE = topics.DeviceTopics("test-store", "mirror-1")


def start_agent(tmp_path: Path, broker: Mosquitto, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    config = tmp_path / "edge.toml"
    config.write_text(
        '[device]\nstore_id = "test-store"\ndevice_id = "mirror-1"\n'
        f'[outbox]\npath = "{tmp_path / "edge.db"}"\n'
        f'[mqtt]\nurl = "{broker.url}"\nbatch_events = 50\nack_timeout_s = 1\nack_key = "{ack_key()}"\n'
    )
    log = (tmp_path / "agent.log").open("ab")
    try:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "touchpoint"), "sync", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    finally:
        log.close()  # the child holds its own descriptor


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox) -> None:
    rng = random.Random(20261123)
    statuses: queue.Queue[Message] = queue.Queue()
    watcher = MqttClient(MqttSection(url=mosquitto.url), "watcher", on_message=statuses.put)
    watcher.subscribe([(DEVICE.status, 1)])
    total = 0
    with Acknowledger(mosquitto.url) as hq, watcher:
        for _ in range(4):  # 4 x 2000 stays below the fixture outbox's capacity
            outbox.append_many([("session.started", {"session_id": "k"})] * 2000)
            total += 2000
            agent = start_agent(tmp_path, mosquitto)
            received = hq.received
            # Kill somewhere inside the stream: once it flows, after a random extra number of events.
            assert wait_until(lambda: hq.received > received + rng.randrange(1, 1000))  # noqa: B023
            agent.send_signal(signal.SIGKILL)
            assert agent.wait(10) == -signal.SIGKILL
            assert outbox.stats().depth > 0  # it died with work left
            # The broker announces the death with our will, retained.
            while json.loads(statuses.get(timeout=10).payload) != {"state": "offline"}:
                pass
        agent = start_agent(tmp_path, mosquitto)
        try:
            assert hq.wait_for(lambda: hq.contiguous.get(DEVICE.ack) == total, timeout=60)
            assert wait_until(lambda: outbox.stats().depth == 0)
        finally:
            agent.send_signal(signal.SIGTERM)
            exit_code = agent.wait(20)
    assert exit_code == 0, (tmp_path / "agent.log").read_text()[-2000:]
    assert hq.seqs() == list(range(1, total + 1))  # every seq exactly once after dedupe by id
    assert outbox.stats().acked_upto == total


def test_sigterm_publishes_offline_status_and_exits_cleanly(
    tmp_path: Path, mosquitto: Mosquitto, outbox: Outbox
) -> None:
    outbox.append_many([("session.started", {"session_id": "t"})] * 3)
    statuses: queue.Queue[Message] = queue.Queue()
    watcher = MqttClient(MqttSection(url=mosquitto.url), "watcher", on_message=statuses.put)
    watcher.subscribe([(DEVICE.status, 1)])
    with watcher, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(tmp_path / "notify.sock"))
        systemd.settimeout(20)
        agent = start_agent(tmp_path, mosquitto, {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
        try:
            online = json.loads(statuses.get(timeout=20).payload)
            notices = {systemd.recv(1024).decode().split("\n")[0] for _ in range(2)}
        finally:
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(20) == 0
        offline = json.loads(statuses.get(timeout=10).payload)
        while (notice := systemd.recv(1024).decode()) != "STOPPING=1":
            assert notice == "WATCHDOG=1"
    assert notices == {"READY=1", "WATCHDOG=1"}
    assert (online["state"], online["backlog"], online["last_seq"]) == ("online", 3, 3)
    # Not the bare will: a full status saying what is left, since nobody acknowledged here.
    assert (offline["state"], offline["backlog"]) == ("offline", 3)


def test_a_missing_ca_file_stops_start_up_with_a_clear_message(tmp_path: Path, mosquitto: Mosquitto) -> None:
    agent = start_agent(tmp_path, mosquitto)
    agent.kill()
    agent.wait()
    environment = {
        **os.environ,
        "TOUCHPOINT_MQTT_URL": "mqtts://127.0.0.1:8883",
        "TOUCHPOINT_MQTT_CA_FILE": str(tmp_path / "missing-ca.pem"),
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "touchpoint"), "sync", "--config", str(tmp_path / "edge.toml")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "ca_file" in result.stderr and "missing-ca.pem" in result.stderr
    assert "Traceback" not in result.stderr
