"""The paho adapter against a real Mosquitto: our Message type, TLS, passwords, sessions, backoff."""

from __future__ import annotations

import queue
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.backoff import Backoff
from common.config import MqttSection
from common.mqtt import ConnectionState, Message, MqttClient, PublishError
from touchpoint.services import Mosquitto, free_port


def collecting(settings: MqttSection, client_id: str, *topics: str) -> tuple[MqttClient, queue.Queue[Message]]:
    received: queue.Queue[Message] = queue.Queue()
    client = MqttClient(settings, client_id, on_message=received.put)
    client.subscribe([(topic, 1) for topic in topics])
    return client, received


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_messages_arrive_as_our_dataclass(mosquitto: Mosquitto, protocol: str) -> None:
    settings = MqttSection(url=mosquitto.url, protocol=protocol)
    subscriber, received = collecting(settings, "sub", "t/#")
    with subscriber, MqttClient(settings, "pub") as publisher:
        assert subscriber.wait_connected(10) and publisher.wait_connected(10)
        assert publisher.publish("t/a", b"\x00payload", content_type="application/x-test").wait(10)
        message = received.get(timeout=10)
    assert (message.topic, message.payload, message.qos, message.retain) == ("t/a", b"\x00payload", 1, False)
    # Content type is an MQTT 5 property; 3.1.1 has nowhere to carry it.
    assert message.content_type == ("application/x-test" if protocol == "5" else None)
    assert subscriber.state is ConnectionState.CLOSED


def test_retained_message_reaches_a_later_subscriber(mosquitto: Mosquitto) -> None:
    settings = MqttSection(url=mosquitto.url)
    with MqttClient(settings, "pub") as publisher:
        assert publisher.wait_connected(10)
        assert publisher.publish("t/retained", b"kept", retain=True).wait(10)
    subscriber, received = collecting(settings, "late", "t/retained")
    with subscriber:
        message = received.get(timeout=10)
    assert (message.payload, message.retain) == (b"kept", True)


def test_persistent_session_keeps_qos1_messages_while_the_subscriber_is_away(mosquitto: Mosquitto) -> None:
    settings = MqttSection(url=mosquitto.url)
    first, _ = collecting(settings, "durable", "t/queued")
    with first:
        assert first.wait_connected(10)
    with MqttClient(settings, "pub") as publisher:
        assert publisher.wait_connected(10)
        assert all(publisher.publish("t/queued", str(i).encode()).wait(10) for i in range(5))
    again, received = collecting(settings, "durable", "t/queued")
    with again:
        payloads = [received.get(timeout=10).payload for _ in range(5)]
    assert payloads == [b"0", b"1", b"2", b"3", b"4"]


def test_reconnects_after_the_broker_restarts(mosquitto: Mosquitto) -> None:
    states: queue.Queue[ConnectionState] = queue.Queue()
    client = MqttClient(
        MqttSection(url=mosquitto.url),
        "bouncer",
        on_state=lambda s, e: states.put(s),
        backoff=Backoff(first_s=0.05, max_s=0.2, jitter=True),
    )
    with client:
        assert client.wait_connected(10)
        mosquitto.kill()
        while states.get(timeout=10) is not ConnectionState.DISCONNECTED:
            pass
        assert client.last_error
        mosquitto.start()
        assert client.wait_connected(10)


def test_unreachable_broker_is_reported_not_raised() -> None:
    settings = MqttSection(url=f"mqtt://127.0.0.1:{free_port()}")
    errors: queue.Queue[str] = queue.Queue()
    client = MqttClient(settings, "lonely", on_state=lambda s, e: errors.put(e) if e else None)
    with client:
        assert "Connection refused" in errors.get(timeout=10)
        assert client.state in (ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)


def test_publish_with_a_bad_topic_raises_our_error(mosquitto: Mosquitto) -> None:
    with MqttClient(MqttSection(url=mosquitto.url), "bad") as client, pytest.raises(PublishError, match="t/#"):
        client.publish("t/#", b"x")


@given(st.integers(0, 200), st.floats(0, 1, exclude_max=True))
def test_backoff_grows_to_the_cap_and_keeps_half_of_it_fixed(attempt: int, rand: float) -> None:
    backoff = Backoff(first_s=0.5, max_s=30.0, jitter=True, attempt=attempt)
    step = min(30.0, 0.5 * 2**attempt)
    assert step / 2 <= backoff.next(rand) <= step
    assert backoff.attempt == attempt + 1


# -- TLS and passwords -------------------------------------------------------------------------


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class TlsBroker:
    port: int  # the TLS listener
    ca: Path


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    """Mosquitto with a TLS listener, a test CA and a password file (user device, secret s3cret)."""
    ca_key, ca, key, csr, cert = (tmp_path / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=touchpoint-test-ca",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    extensions = tmp_path / "san.cnf"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(extensions),
        "-out",
        str(cert),
    )
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "device", "s3cret"], check=True, capture_output=True
    )
    passwords.chmod(0o600)
    tls_port = free_port()
    # As root, Mosquitto drops to its own user before reading the password file; keep it root
    # here (a no-op for a non-root test run) so it can read files under pytest's private tmp.
    extra = (
        f"user root\npassword_file {passwords}\nlistener {tls_port} 127.0.0.1\n"
        f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
    )
    broker = Mosquitto(workdir=tmp_path / "broker", extra_config=extra, anonymous=False).start()
    yield TlsBroker(tls_port, ca)
    broker.kill()


def test_tls_with_a_password_connects_and_delivers(tls_broker: TlsBroker) -> None:
    settings = MqttSection(
        url=f"mqtts://localhost:{tls_broker.port}", ca_file=str(tls_broker.ca), username="device", password="s3cret"
    )
    subscriber, received = collecting(settings, "tls-sub", "secure/#")
    with subscriber, MqttClient(settings, "tls-pub") as publisher:
        assert subscriber.wait_connected(10), subscriber.last_error
        assert publisher.wait_connected(10), publisher.last_error
        assert publisher.publish("secure/x", b"sealed").wait(10)
        assert received.get(timeout=10).payload == b"sealed"


def test_wrong_password_is_refused_with_a_reason(tls_broker: TlsBroker) -> None:
    settings = MqttSection(
        url=f"mqtts://localhost:{tls_broker.port}", ca_file=str(tls_broker.ca), username="device", password="wrong"
    )
    errors: queue.Queue[str] = queue.Queue()
    with MqttClient(settings, "intruder", on_state=lambda s, e: errors.put(e) if e else None):
        assert "refused" in errors.get(timeout=10)


def test_tls_without_the_ca_fails_verification(tls_broker: TlsBroker) -> None:
    settings = MqttSection(url=f"mqtts://localhost:{tls_broker.port}", username="device", password="s3cret")
    errors: queue.Queue[str] = queue.Queue()
    with MqttClient(settings, "trusting", on_state=lambda s, e: errors.put(e) if e else None):
        assert "CERTIFICATE_VERIFY_FAILED" in errors.get(timeout=10)
