"""The one adapter around paho-mqtt: our Message, our states, our errors, our reconnect loop.

Everything else (the edge sync agent, HQ's ingestor, tests, benchmarks) talks MQTT through
:class:`MqttClient`, so paho's types never leak past this module. One network thread per client
runs paho's ``loop()`` and reconnects with exponential backoff and jitter; the session is
persistent (MQTT 5 ``clean_start=False`` with a session expiry, 3.1.1 ``clean_session=False``), so
QoS 1 messages queued while we were away are delivered when we come back.
"""

from __future__ import annotations

import enum
import logging
import random
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.backoff import Backoff
from common.config import MqttSection
from common.errors import TouchpointError

log = logging.getLogger(__name__)


class MqttError(TouchpointError):
    """Root of the errors this adapter raises."""


class PublishError(MqttError):
    """paho did not accept or could not send a message; ``code`` is paho's error name."""

    def __init__(self, topic: str, code: str) -> None:
        self.topic = topic
        self.code = code
        super().__init__(f"publish to {topic!r} failed: {code}")


class ConnectionState(enum.Enum):
    DISCONNECTED = "disconnected"  # not connected; the network thread retries after a backoff
    CONNECTING = "connecting"  # TCP/TLS up and CONNECT sent, waiting for CONNACK
    CONNECTED = "connected"
    CLOSED = "closed"  # stop() was called; no more reconnects


@dataclass(frozen=True)
class Message:
    """A received message, independent of paho."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    content_type: str | None = None  # MQTT 5 only


@dataclass(frozen=True)
class Will:
    """The message the broker publishes for us when we vanish without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class Delivery:
    """What ``publish`` returns: wait on it to learn that the broker accepted the message."""

    def __init__(self, topic: str, info: paho.MQTTMessageInfo) -> None:
        self.topic = topic
        self._info = info

    def wait(self, timeout: float) -> bool:
        """True once the broker has acknowledged (QoS 1) or we have sent (QoS 0) the message,
        False when ``timeout`` passed first; raises PublishError when paho gave up on it.
        """
        try:
            self._info.wait_for_publish(timeout)
            return self._info.is_published()
        except (RuntimeError, ValueError):
            raise PublishError(self.topic, paho.error_string(self._info.rc)) from None


class _ClosingSSLSocket(ssl.SSLSocket):
    """paho leaves a socket whose TLS handshake failed for the garbage collector; close it."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def tls_context(settings: MqttSection) -> ssl.SSLContext:
    """Verify the broker against ``ca_file`` (else the system CAs); present a client cert if set."""
    try:
        context = ssl.create_default_context(cafile=settings.ca_file or None)
    except (OSError, ssl.SSLError) as error:
        raise MqttError(f"[mqtt] ca_file {settings.ca_file!r} is not a readable CA file: {error}") from None
    if settings.cert_file:
        try:
            context.load_cert_chain(settings.cert_file, settings.key_file or None)
        except (OSError, ssl.SSLError) as error:
            raise MqttError(
                f"[mqtt] cert_file {settings.cert_file!r} / key_file {settings.key_file!r}: "
                f"not a readable certificate and key: {error}"
            ) from None
    context.sslsocket_class = _ClosingSSLSocket
    return context


MessageHandler = Callable[[Message], None]
StateHandler = Callable[[ConnectionState, str], None]


class MqttClient:
    """A reconnecting MQTT client configured from ``[mqtt]``.

    ``on_message`` and ``on_state`` run on the network thread: keep them short (hand work to a
    queue). Subscriptions are renewed on every connect, so they survive a broker that lost
    its sessions.
    """

    def __init__(
        self,
        settings: MqttSection,
        client_id: str,
        *,
        will: Will | None = None,
        on_message: MessageHandler | None = None,
        on_state: StateHandler | None = None,
        backoff: Backoff | None = None,
        max_inflight: int = 100,
    ) -> None:
        url = urlsplit(settings.url)
        self.host = url.hostname or "127.0.0.1"
        self.tls = url.scheme == "mqtts"
        self.port = url.port or (8883 if self.tls else 1883)
        self.settings = settings
        self.client_id = client_id
        self.backoff = backoff or Backoff(jitter=True)
        self._on_message = on_message
        self._on_state = on_state
        self._subscriptions: dict[str, int] = {}
        self._state = ConnectionState.DISCONNECTED
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""
        self.mqtt5 = settings.protocol == "5"
        protocol = MQTTProtocolVersion.MQTTv5 if self.mqtt5 else MQTTProtocolVersion.MQTTv311
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if self.mqtt5 else False,
        )
        self._client.max_inflight_messages_set(max_inflight)
        if settings.username:
            self._client.username_pw_set(settings.username, settings.password or None)
        if self.tls:
            self._client.tls_set_context(tls_context(settings))
        if will is not None:
            self._client.will_set(will.topic, will.payload, will.qos, will.retain)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        # With this set, paho leaves writing to our network thread's loop() instead of sending
        # inline on the publishing thread, so the caller prepares its next message meanwhile.
        self._client.on_socket_register_write = lambda client, userdata, sock: None
        self._subscribe_mid: int | None = -1  # paho gives None when not connected

    # -- public API -------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    def start(self) -> MqttClient:
        """Start the network thread; it connects in the background and keeps reconnecting."""
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.client_id}", daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or ``timeout``; returns whether we are connected."""
        with self._changed:
            self._changed.wait_for(lambda: self._state is ConnectionState.CONNECTED, timeout)
            return self._state is ConnectionState.CONNECTED

    def subscribe(self, topics: Iterable[tuple[str, int]]) -> None:
        """Subscribe now (if connected) and again after every reconnect."""
        new = dict(topics)
        self._subscriptions.update(new)
        if self._state is ConnectionState.CONNECTED and new:
            self._client.subscribe(list(new.items()))

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        content_type: str | None = None,
    ) -> Delivery:
        """Queue a message; raises PublishError when paho refuses it outright.

        Published while disconnected, a QoS 1 message waits in paho and goes out on reconnect.
        """
        properties = None
        if self.mqtt5 and content_type:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ContentType = content_type
        try:
            info = self._client.publish(topic, payload, qos, retain, properties)
        except ValueError as error:
            raise PublishError(topic, str(error)) from None
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublishError(topic, paho.error_string(info.rc))
        return Delivery(topic, info)

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly (the will is not sent), end the network thread, free the sockets."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_state(ConnectionState.CLOSED, "")
        # Without loop_start()/loop_stop() paho only frees its wake-up socket pair in __del__.
        self._client._reset_sockets()  # noqa: SLF001 - the only way to close them deterministically

    def __enter__(self) -> MqttClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- network thread ---------------------------------------------------------------------

    def _run(self) -> None:
        rng = random.Random()
        while not self._closing.is_set():
            try:
                self._connect()
            except (OSError, ssl.SSLError, ValueError) as error:
                self._set_state(ConnectionState.DISCONNECTED, f"connect to {self.host}:{self.port}: {error}")
            else:
                disconnecting = False
                while self._client.loop(0.2) == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    if self._state is ConnectionState.CONNECTED:
                        self.backoff.reset()
                    if self._closing.is_set() and not disconnecting:
                        self._client.disconnect()  # flushed by the next loop(), then it ends
                        disconnecting = True
                if self._closing.is_set():
                    return
                self._set_state(ConnectionState.DISCONNECTED, self.last_error or "connection lost")
            delay = self.backoff.next(rng.random())
            log.info("mqtt %s: reconnecting in %.1f s (%s)", self.client_id, delay, self.last_error)
            self._closing.wait(delay)

    def _connect(self) -> None:
        self._set_state(ConnectionState.CONNECTING, "")
        keepalive = self.settings.keepalive_s
        if self.mqtt5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.settings.session_expiry_s
            self._client.connect(self.host, self.port, keepalive, clean_start=False, properties=properties)
        else:
            self._client.connect(self.host, self.port, keepalive)

    def _set_state(self, state: ConnectionState, error: str) -> None:
        with self._changed:
            if self._state is ConnectionState.CLOSED:
                return
            if error:
                self.last_error = error
            elif state is ConnectionState.CONNECTED:
                self.last_error = ""
            changed = state is not self._state
            self._state = state
            self._changed.notify_all()
        if changed and self._on_state is not None:
            self._on_state(state, error)

    def _handle_connect(
        self, client: paho.Client, userdata: object, flags: object, reason: paho.ReasonCode, properties: object
    ) -> None:
        if reason.is_failure:
            self._set_state(ConnectionState.DISCONNECTED, f"broker refused the connection: {reason}")
            return
        if not self._subscriptions:
            self._set_state(ConnectionState.CONNECTED, "")
            return
        # CONNECTED waits for the SUBACK, so whoever waits for it can rely on the subscriptions.
        _, self._subscribe_mid = client.subscribe(list(self._subscriptions.items()))

    def _handle_subscribe(
        self, client: paho.Client, userdata: object, mid: int, reasons: list[paho.ReasonCode], properties: object
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            self.last_error = f"subscription refused: {', '.join(refused)}"
            log.error("mqtt %s: %s", self.client_id, self.last_error)
        if mid == self._subscribe_mid:
            self._set_state(ConnectionState.CONNECTED, "")

    def _handle_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: paho.ReasonCode, properties: object
    ) -> None:
        if reason.is_failure:
            self.last_error = f"disconnected: {reason}"

    def _handle_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        content_type = getattr(message.properties, "ContentType", None) if message.properties else None
        ours = Message(message.topic, bytes(message.payload), message.qos, bool(message.retain), content_type)
        if self._on_message is None:
            return
        try:
            self._on_message(ours)
        except Exception:  # a handler's bug must not end the network thread
            log.exception("mqtt %s: handler failed on %s", self.client_id, ours.topic)
