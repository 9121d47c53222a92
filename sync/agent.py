"""The sync agent (``touchpoint sync``): outbox to HQ over MQTT, HQ's acks and downlink back.

One main thread does all the work (outbox reads and deletes, downlink writes, publishing); the
MQTT network thread only hands received messages and connection changes over through a queue.
An event leaves the outbox only when HQ's ``ack`` covers its ``seq``; what HQ does not
acknowledge in ``ack_timeout_s`` is published again (see sync.window). The agent keeps seq
ranges, never events, in memory, so a device offline for days only grows its SQLite file.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from types import FrameType

from common import systemd
from common.config import EdgeConfig
from common.errors import ConfigError
from common.mqtt import ConnectionState, Message, MqttClient, MqttError, PublishError, Will
from contract import acks, topics
from contract.envelope import BATCH_CONTENT_TYPE, utc_now_iso
from sync.acks import count, decide
from sync.downlink import DownlinkError, DownlinkStore
from sync.outbox import Outbox, OutboxStats
from sync.state import StateTable, SyncState
from sync.window import SendWindow

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.2  # how often an idle agent looks for new events in the outbox
STATUS_EVERY_S = 30.0
STATE_EVERY_S = 10.0  # sync_state is rewritten at least this often, so readers can tell it is stale
OFFLINE_WAIT_S = 2.0  # how long shutdown waits for the broker to take the offline status


@dataclass(frozen=True)
class _StateChange:
    state: ConnectionState
    error: str


def status_due(now: float, last_sent: float | None, depth: int, last_depth: int) -> bool:
    """Whether to publish status: never sent, every STATUS_EVERY_S, or (at most once a second)
    when the backlog moved by a tenth or by 100 events, whichever is more."""
    if last_sent is None or now - last_sent >= STATUS_EVERY_S:
        return True
    return now - last_sent >= 1.0 and abs(depth - last_depth) >= max(100, last_depth // 10)


def make_status(state: str, stats: OutboxStats, wall: float, unrecoverable: tuple[acks.Range, ...]) -> topics.Status:
    return topics.Status(
        state=state,
        time=utc_now_iso(datetime.fromtimestamp(wall, timezone.utc)),
        backlog=stats.depth,
        oldest_age_s=round(stats.oldest_age_s, 3),
        last_seq=stats.last_seq,
        acked_upto=stats.acked_upto,
        dropped=stats.dropped,
        unrecoverable=[list(gap) for gap in unrecoverable],
    )


def ack_keys(config: EdgeConfig) -> tuple[str, ...]:
    """``[mqtt] ack_key`` and, during a rotation, ``ack_key_previous``; raises ConfigError without a key,
    since an agent that trusted unsigned acks would delete events on anyone's word."""
    if not config.mqtt.ack_key:
        raise ConfigError(
            "mqtt.ack_key",
            "",
            "this device's key for HQ's signed acks, printed by `touchpoint hq device-key "
            f"{config.device.store_id} {config.device.device_id} --config hq.toml` (and by add-device)",
        )
    return tuple(key for key in (config.mqtt.ack_key, config.mqtt.ack_key_previous) if key)


class Agent:
    """The edge side of delivery; ``run(stop)`` until ``stop`` is set."""

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        settings = config.mqtt
        self.topics = topics.DeviceTopics(config.device.store_id, config.device.device_id)
        self.keys = ack_keys(config)
        self.inbox: queue.Queue[Message | _StateChange] = queue.Queue()
        # First, so a bad TLS file fails before any database is open.
        self.client = MqttClient(
            settings,
            self.topics.client_id,
            will=Will(self.topics.status, topics.OFFLINE_WILL),
            on_message=self.inbox.put,
            on_state=lambda state, error: self.inbox.put(_StateChange(state, error)),
        )
        self.outbox = Outbox(config.outbox.path, config.source, config.outbox.capacity)
        self.downlink = DownlinkStore(config.outbox.path)
        self.state_table = StateTable(config.outbox.path)
        previous = self.state_table.previous
        self._refused_acks = previous.refused_acks if previous else 0
        self._newest_ack_at_us = previous.newest_ack_at_us if previous else 0
        self._unrecoverable = previous.unrecoverable if previous else ()
        self.window = SendWindow(self.outbox.stats().acked_upto, settings.inflight_batches, settings.ack_timeout_s)
        self.client.subscribe(
            [(self.topics.ack, 1)] + [(self.topics.downlink(kind), 1) for kind in topics.DOWNLINK_KINDS]
        )
        self._kinds = {self.topics.downlink(kind): kind for kind in topics.DOWNLINK_KINDS}
        self._last_ack_at: float | None = None
        self._last_publish_at: float | None = None
        self._last_error = ""
        self._last_error_at: float | None = None
        self._status_at: float | None = None
        self._status_depth = 0
        self._checked_at = 0.0
        self._saved: tuple[object, ...] | None = None
        self._saved_progress: tuple[int, float | None] | None = None
        self._saved_at = 0.0
        self._ready = False
        self._watchdog_at = 0.0

    def run(self, stop: threading.Event) -> None:
        """Publish, apply acks and downlink until ``stop`` is set; then go offline cleanly."""
        self.client.start()
        try:
            busy = False
            while not stop.is_set():
                self._receive(0.0 if busy else IDLE_POLL_S)
                now, wall = time.monotonic(), time.time()
                busy = False
                if self.client.state is ConnectionState.CONNECTED:
                    if self.window.expired(now):
                        log.warning(
                            "no ack beyond seq %d for %.0f s: resending", self.window.acked, self.window.timeout_s
                        )
                        self.window.rewind()
                    busy = self._publish_batches(now, wall)
                    self._publish_status_if_due(now, wall)
                self._save_state(wall)
                self._ping_watchdog(now)
        finally:
            self._shutdown()

    # -- receiving --------------------------------------------------------------------------

    def _receive(self, timeout: float) -> None:
        """Handle everything the network thread queued, waiting up to ``timeout`` for the first."""
        try:
            item = self.inbox.get(timeout=timeout) if timeout else self.inbox.get_nowait()
            while True:
                self._handle(item)
                item = self.inbox.get_nowait()
        except queue.Empty:
            return

    def _handle(self, item: Message | _StateChange) -> None:
        if isinstance(item, _StateChange):
            self._connection_changed(item)
        elif item.topic == self.topics.ack:
            self._apply_ack(item.payload)
        elif item.topic in self._kinds:
            self._apply_downlink(self._kinds[item.topic], item.payload)

    def _connection_changed(self, change: _StateChange) -> None:
        if change.state is ConnectionState.CONNECTED:
            log.info("connected to %s:%d", self.client.host, self.client.port)
            self._last_error = ""  # last_error_at keeps when the last one happened
            self.window.rearm(time.monotonic())  # paho resends what was in flight
            self._status_at = None  # announce ourselves at once
        elif change.state is ConnectionState.DISCONNECTED:
            self._error(f"not connected: {change.error}")
        if not self._ready and change.state in (ConnectionState.CONNECTED, ConnectionState.DISCONNECTED):
            self._ready = True
            systemd.ready(f"mqtt {change.state.value}")

    def _apply_ack(self, payload: bytes) -> None:
        """Act only on an ack signed with this device's key (sync.acks says how); count the rest."""
        if not payload:
            return  # the retained ack being cleared
        try:
            ack = acks.decode(payload, self.keys, self.topics.store, self.topics.device)
        except acks.AckRefused as error:
            self._refused_acks += 1
            self._error(str(error))
            return
        stats = self.outbox.stats()
        if ack.upto > stats.last_seq:
            # HQ acknowledges only what it received from us, so this ack speaks of another
            # database (the device's was replaced); applying it would delete unsent events.
            self._error(f"ack upto {ack.upto} is beyond our last seq {stats.last_seq}; ignored")
            return
        decision = decide(ack, self.window.acked, stats.acked_upto, self._newest_ack_at_us)
        if decision.fresh:
            self._newest_ack_at_us = ack.at_us
            if decision.lost != self._unrecoverable:
                self._unrecoverable = decision.lost
                self._status_at = None  # tell HQ at once
                if decision.lost:
                    self._error(
                        f"HQ lacks {count(decision.lost)} events this device no longer holds "
                        f"(seq {', '.join(f'{lo}..{hi}' for lo, hi in decision.lost[:5])}): unrecoverable"
                    )
        if decision.rewind:
            log.warning(
                "HQ acknowledges only up to %d, not %d: resending what the outbox holds", ack.upto, stats.acked_upto
            )
            self.window.rewind()
        if self.window.acknowledge(decision.upto):
            self.outbox.acknowledge(decision.upto)
            self._last_ack_at = time.time()

    def _apply_downlink(self, kind: str, payload: bytes) -> None:
        try:
            applied = self.downlink.apply(kind, payload)
        except DownlinkError as error:
            self._error(f"downlink ignored: {error}")
            return
        log.info(
            "downlink %s version %s %s",
            kind,
            self.downlink.version(kind),
            "applied" if applied else "kept (received version is not newer)",
        )

    def _error(self, message: str) -> None:
        log.warning("%s", message)
        self._last_error, self._last_error_at = message, time.time()

    # -- sending ----------------------------------------------------------------------------

    def _publish_batches(self, now: float, wall: float) -> bool:
        """Fill the window from the outbox; returns whether anything was published."""
        settings = self.config.mqtt
        published = False
        while self.window.has_room:
            # The brackets and commas count: the payload stays within batch_bytes.
            batch = self.outbox.pending(self.window.next_after, settings.batch_events, settings.batch_bytes - 2)
            if not batch:
                break
            payload = b"[" + b",".join(event.body for event in batch) + b"]"
            try:
                self.client.publish(self.topics.events, payload, qos=1, content_type=BATCH_CONTENT_TYPE)
            except PublishError as error:
                self._error(str(error))
                break
            self.window.sent(batch[0].seq, batch[-1].seq, now)
            self._last_publish_at = wall
            published = True
        return published

    def _publish_status_if_due(self, now: float, wall: float) -> None:
        if self._status_at is not None and now - self._checked_at < 1.0:
            return
        self._checked_at = now
        stats = self.outbox.stats()
        if not status_due(now, self._status_at, stats.depth, self._status_depth):
            return
        status = make_status("online", stats, wall, self._unrecoverable)
        try:
            self.client.publish(self.topics.status, status.encode(), qos=1, retain=True)
        except PublishError as error:
            self._error(str(error))
            return
        self._status_at, self._status_depth = now, stats.depth

    # -- bookkeeping ------------------------------------------------------------------------

    def _save_state(self, wall: float, force: bool = False) -> None:
        """Write sync_state at once when the connection or the error changed, every second
        while acks or publishes move, and every STATE_EVERY_S anyway."""
        key = (self.client.state.value, self._last_error, self._refused_acks, self._unrecoverable)
        progress = (self.window.acked, self._last_publish_at)
        every = 1.0 if progress != self._saved_progress else STATE_EVERY_S
        if not (force or key != self._saved or wall - self._saved_at >= every):
            return
        self.state_table.write(
            SyncState(
                state=self.client.state.value,
                acked_upto=self.window.acked,
                last_ack_at=self._last_ack_at,
                last_publish_at=self._last_publish_at,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
                updated_at=wall,
                refused_acks=self._refused_acks,
                newest_ack_at_us=self._newest_ack_at_us,
                unrecoverable=self._unrecoverable,
            )
        )
        self._saved, self._saved_progress, self._saved_at = key, progress, wall

    def _ping_watchdog(self, now: float) -> None:
        if now - self._watchdog_at >= 1.0:
            systemd.watchdog()
            self._watchdog_at = now

    def _shutdown(self) -> None:
        """Say we are going offline, disconnect without triggering the will, close the files."""
        try:
            if self.client.state is ConnectionState.CONNECTED:
                status = make_status("offline", self.outbox.stats(), time.time(), self._unrecoverable)
                try:
                    delivered = self.client.publish(self.topics.status, status.encode(), qos=1, retain=True)
                    delivered.wait(OFFLINE_WAIT_S)
                except PublishError as error:
                    log.warning("offline status not sent: %s", error)
            self.client.stop()
            self._save_state(time.time(), force=True)
        finally:
            self.state_table.close()
            self.downlink.close()
            self.outbox.close()


def run(config: EdgeConfig) -> None:
    """``touchpoint sync``: run the agent until SIGTERM or SIGINT."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        systemd.stopping()
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        agent = Agent(config)
    except (MqttError, ConfigError) as error:
        raise SystemExit(f"touchpoint sync: {error}") from None
    agent.run(stop)
