"""deploy/mosquitto's real ACL and password files in a real Mosquitto: each device only as itself.

The production TLS listener is swapped for a plain one on a free port; everything else that
decides access (allow_anonymous false, passwd written by add-device, the acl file) is the real one.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.config import MqttSection
from common.mqtt import ConnectionState, MqttClient
from contract.topics import DeviceTopics
from tests.acknowledger import ACK_SECRET, ack_key
from tests.hq_support import Peer
from touchpoint.services import Mosquitto, free_port, wait_for_port

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto"
A = DeviceTopics("berlin-01", "mirror-1")
B = DeviceTopics("berlin-01", "mirror-2")
C = DeviceTopics("hamburg-01", "kiosk-1")


def add_device(directory: Path, device: DeviceTopics) -> str:
    """Run the real add-device script; returns the [mqtt] lines it prints."""
    env = {**os.environ, "TOUCHPOINT_DEVICE_PASSWORD": f"pw-{device.device}", "TOUCHPOINT_HQ_ACK_SECRET": ACK_SECRET}
    result = subprocess.run(
        [str(DEPLOY / "add-device"), "-d", str(directory), device.store, device.device],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return result.stdout


def auth_files(directory: Path) -> Path:
    """The real acl plus a passwd with A, B, C (through add-device) and hq."""
    directory.mkdir(exist_ok=True)
    shutil.copy(DEPLOY / "acl", directory / "acl")
    for device in (A, B, C):
        add_device(directory, device)
    subprocess.run(["mosquitto_passwd", "-b", str(directory / "passwd"), "hq", "pw-hq"], check=True)
    return directory


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    auth = auth_files(tmp_path / "auth")
    # As root, Mosquitto drops to its own user, which cannot read pytest's private tmp; stay root.
    broker = Mosquitto(
        workdir=tmp_path / "mosquitto",
        anonymous=False,
        extra_config=f"user root\npassword_file {auth}/passwd\nacl_file {auth}/acl\n",
    ).start()
    yield broker
    broker.kill()


def as_device(broker: Mosquitto, device: DeviceTopics, topics: list[str] = []) -> Peer:  # noqa: B006
    return Peer(
        broker.url, topics, device.client_id, username=f"{device.store}/{device.device}", password=f"pw-{device.device}"
    )


def as_hq(broker: Mosquitto, topics: list[str]) -> Peer:
    return Peer(broker.url, topics, "hq-test", username="hq", password="pw-hq")


def drain(peer: Peer) -> list[tuple[str, bytes]]:
    received = []
    while True:
        try:
            message = peer.messages.get_nowait()
        except queue.Empty:
            return received
        received.append((message.topic, message.payload))


def test_add_device_prints_the_edge_settings_and_is_idempotent(tmp_path: Path) -> None:
    shutil.copy(DEPLOY / "acl", tmp_path / "acl")
    printed = add_device(tmp_path, A)
    add_device(tmp_path, A)
    hq_toml = tmp_path / "hq.toml"
    hq_toml.write_text(f'[hq]\nack_secret = "{ACK_SECRET}"\n')
    command = [str(Path(sys.executable).parent / "touchpoint"), "hq", "device-key", A.store, A.device]
    key = subprocess.run([*command, "--config", str(hq_toml)], capture_output=True, text=True, check=True).stdout
    assert key.split()[-1] == ack_key(A.store, A.device)
    assert printed == (
        f'[mqtt]\nusername = "berlin-01/mirror-1"\npassword = "pw-mirror-1"\nack_key = "{key.split()[-1]}"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "TOUCHPOINT_HQ_ACK_SECRET"}
    unkeyed = subprocess.run(
        [str(DEPLOY / "add-device"), "-d", str(tmp_path), A.store, A.device], capture_output=True, text=True, env=env
    )
    assert unkeyed.returncode == 2 and "TOUCHPOINT_HQ_ACK_SECRET" in unkeyed.stderr
    assert (tmp_path / "acl").read_text().count("user berlin-01/mirror-1\n") == 1
    bad = subprocess.run(
        [str(DEPLOY / "add-device"), "-d", str(tmp_path), "Berlin", "x"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "not an identifier" in bad.stderr


def test_a_device_cannot_publish_as_another(broker: Mosquitto) -> None:
    uplink = ["$share/touchpoint-hq/touchpoint/v1/+/+/events", "touchpoint/v1/+/+/status"]
    with as_hq(broker, uplink) as hq, as_device(broker, A) as a:
        a.send(A.events, b"a-1")
        a.client.publish(B.events, b"forged-events").wait(10)  # accepted on the wire, then dropped
        a.client.publish(B.status, b"forged-status").wait(10)
        a.send(A.status, b"a-status")
        a.send(A.events, b"a-2")
        received = [hq.next() for _ in range(3)]
        assert [(m.topic, m.payload) for m in received] == [
            (A.events, b"a-1"),
            (A.status, b"a-status"),
            (A.events, b"a-2"),
        ]
        assert drain(hq) == []


def test_a_device_reads_only_its_own_store_and_its_own_ack(broker: Mosquitto) -> None:
    with (
        as_hq(broker, ["touchpoint/v1/#"]) as hq,
        as_device(broker, A, ["touchpoint/v1/#"]) as a,
        as_device(broker, B) as b,
        as_device(broker, C) as c,
    ):
        b.send(B.events, b"b-events")
        c.send(C.status, b"c-status")
        # HQ reads everything, every device's uplink included.
        assert {(m.topic, m.payload) for m in (hq.next(), hq.next())} == {
            (B.events, b"b-events"),
            (C.status, b"c-status"),
        }
        for topic in (
            C.downlink("catalog"),
            B.ack,
            B.downlink("config"),
            A.downlink("catalog"),
            A.downlink("recommendations"),
            A.downlink("config"),
            A.ack,
        ):
            hq.send(topic, topic.encode())
        own = [A.downlink("catalog"), A.downlink("recommendations"), A.downlink("config"), A.ack]
        # Delivered in publish order, so had any foreign message been allowed it would have come first.
        assert [a.next().topic for _ in own] == own
        assert drain(a) == []


def test_unknown_users_and_wrong_passwords_are_refused(broker: Mosquitto) -> None:
    for username, password in (("", ""), ("hq", "wrong"), ("berlin-01/mirror-9", "pw-mirror-9")):
        states: queue.Queue[ConnectionState] = queue.Queue()
        settings = MqttSection(url=broker.url, username=username, password=password)
        with MqttClient(settings, "intruder", on_state=lambda state, error, states=states: states.put(state)):
            seen = [states.get(timeout=10)]
            while seen[-1] is not ConnectionState.DISCONNECTED:
                seen.append(states.get(timeout=10))
        assert ConnectionState.CONNECTED not in seen, username


def test_the_production_config_runs_with_tls_and_the_acl(tmp_path: Path) -> None:
    """touchpoint.conf as shipped, with only its paths and port moved into the test's directory."""
    auth = auth_files(tmp_path / "auth")
    cert, key = tmp_path / "touchpoint.crt", tmp_path / "touchpoint.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    conf = (DEPLOY / "touchpoint.conf").read_text()
    for old, new in (
        ("/etc/mosquitto/certs/", f"{tmp_path}/"),
        ("/etc/mosquitto/touchpoint/", f"{auth}/"),
        ("/var/lib/mosquitto/", f"{tmp_path}/"),
        ("listener 8883", f"listener {port} 127.0.0.1"),
    ):
        assert old in conf
        conf = conf.replace(old, new)
    (tmp_path / "mosquitto.conf").write_text("user root\n" + conf)
    with open(tmp_path / "mosquitto.log", "wb") as log:
        process = subprocess.Popen(
            ["/usr/sbin/mosquitto", "-c", str(tmp_path / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port)
            url = f"mqtts://localhost:{port}"
            with (
                Peer(url, ["touchpoint/v1/#"], "hq-tls", username="hq", password="pw-hq", ca_file=str(cert)) as hq,
                Peer(
                    url, [], A.client_id, username="berlin-01/mirror-1", password="pw-mirror-1", ca_file=str(cert)
                ) as a,
            ):
                a.client.publish(B.events, b"forged").wait(10)
                a.send(A.events, b"over-tls")
                message = hq.next()
            assert (message.topic, message.payload) == (A.events, b"over-tls")
        finally:
            process.terminate()
            process.wait(10)
