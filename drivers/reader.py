"""The transport: a thread that owns one serial port, feeds its framer and reports tag reads.

The port is any pyserial URL (``/dev/ttyUSB0``, ``loop://``, ``socket://host:port``). A reader
that disappears (USB unplugged: open fails, or a read raises SerialException/OSError) is reopened
with capped exponential backoff, so a flaky cable never needs a restart. Staff see the state and
counters through ``status()``. The thread's life, state and reconnects are :class:`ReaderThread`,
which LLRP readers (:mod:`drivers.llrp`) share.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import serial

from common.backoff import Backoff
from drivers import framing
from drivers.framing import Framer
from drivers.types import TagRead

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.1  # silence this long ends a partial frame (see Framer.idle)
KEEPALIVE_S = 30.0  # the M100's multiple poll runs out; re-sent this often
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0
RATE_WINDOW_S = 5.0


class ReaderState(enum.Enum):
    """Where a reader is in its life: connecting, connected, disconnected (retrying) or stopped."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ReaderStatus:
    """A snapshot of a reader for the staff screen and /metrics."""

    protocol: str
    url: str
    state: ReaderState
    frames_total: int
    frames_per_s: float
    bad_frames: int
    reconnects: int
    last_error: str | None
    name: str = "reader"
    reads_total: int = 0


class RateMeter:
    """Frames per second over a sliding window, from (time, running total) samples."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, now: float, total: int) -> None:
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class ReaderThread:
    """What every reader shares: its own daemon thread, started and stopped; its state, counters and
    reconnects under a lock; a wait with backoff after a loss; each read handed to ``on_read`` (an
    exception from it is logged and reading goes on).

    A subclass implements ``_run`` (returning once ``_stopping`` is set) and ``_counters``.
    """

    label = "reader"  # how log lines name it
    thread_prefix = "reader"

    def __init__(self, url: str, on_read: Callable[[TagRead], None], name: str) -> None:
        self.url = url
        self.name = name
        self._on_read = on_read
        self._meter = RateMeter()
        self._lock = threading.Lock()
        self._state = ReaderState.STOPPED
        self._reconnects = 0
        self._connected_before = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; it connects in the background."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._connected_before = False
        self._set_state(ReaderState.CONNECTING)
        self._thread = threading.Thread(target=self._run, name=f"{self.thread_prefix}-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._set_state(ReaderState.STOPPED)

    def status(self) -> ReaderStatus:
        """A consistent-enough snapshot; counters are read without stopping the thread."""
        with self._lock:
            protocol, frames, bad_frames, reads, last_error = self._counters()
            return ReaderStatus(
                protocol=protocol,
                url=self.url,
                state=self._state,
                frames_total=frames,
                frames_per_s=round(self._meter.rate(), 1),
                bad_frames=bad_frames,
                reconnects=self._reconnects,
                last_error=last_error,
                name=self.name,
                reads_total=reads,
            )

    def _run(self) -> None:
        raise NotImplementedError

    def _counters(self) -> tuple[str, int, int, int, str | None]:
        """(protocol, frames, bad frames, reads, last error), called under the lock."""
        raise NotImplementedError

    def _note_error(self, error: str) -> None:
        """Keep ``error`` as the most recent problem, called under the lock."""
        raise NotImplementedError

    def _wake(self) -> None:
        """Interrupt a wait of ``_run`` on anything but ``_stopping``, on ``stop``; none by default."""

    def _set_state(self, state: ReaderState, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._note_error(error)

    def _connected(self) -> None:
        """Count a reconnect for every connection after the first since ``start``."""
        with self._lock:
            if self._connected_before:
                self._reconnects += 1
            self._connected_before = True

    def _lost(self, message: str, backoff: Backoff) -> None:
        log.warning("%s %s: %s", self.label, self.name, message)
        self._set_state(ReaderState.DISCONNECTED, message)
        self._stopping.wait(backoff.next())

    def _deliver(self, reads: list[TagRead]) -> None:
        for read in reads:
            try:
                self._on_read(read)
            except Exception:
                log.exception("%s %s: on_read failed for %s", self.label, self.name, read.epc)


class Reader(ReaderThread):
    """One RFID reader on a pyserial URL, read by its own daemon thread.

    ``on_read`` runs in the reader thread for every tag read. ``baudrate`` 0 means the protocol's;
    ``keepalive_s`` is how often the start command (M100 multiple poll) is re-sent, or, for a
    streaming protocol (Mercury), how long a silence must last before it is; ``start`` replaces
    the protocol's start command (a Mercury region). Raises ReaderError at construction for an
    unknown protocol.
    """

    def __init__(
        self,
        protocol: str,
        url: str,
        on_read: Callable[[TagRead], None],
        *,
        baudrate: int = 0,
        name: str = "reader",
        keepalive_s: float = KEEPALIVE_S,
        start: bytes | None = None,
    ) -> None:
        self._protocol = framing.protocol(protocol)
        super().__init__(url, on_read, name)
        self._start = self._protocol.start if start is None else start
        self.baudrate = baudrate or self._protocol.baudrate
        self.keepalive_s = keepalive_s
        self._framer: Framer = self._protocol.new_framer()

    def _counters(self) -> tuple[str, int, int, int, str | None]:
        framer = self._framer
        return self._protocol.name, framer.frames, framer.bad_frames, framer.reads, framer.last_error

    def _note_error(self, error: str) -> None:
        self._framer.last_error = error  # one "most recent problem" for staff, of any kind

    def _run(self) -> None:
        backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        while not self._stopping.is_set():
            self._set_state(ReaderState.CONNECTING)
            try:
                port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=READ_TIMEOUT_S)
            except (serial.SerialException, OSError, ValueError) as error:
                self._lost(f"cannot open {self.url}: {error}", backoff)
                continue
            self._connected()
            self._set_state(ReaderState.CONNECTED)
            log.info("reader %s connected to %s", self.name, self.url)
            try:
                self._pump(port, backoff)
            except (serial.SerialException, OSError) as error:
                self._lost(f"lost {self.url}: {error}", backoff)
            except Exception as error:  # a bug must not leave a dead thread that claims "connected"
                log.exception("reader %s failed", self.name)
                self._lost(f"internal error: {error!r}", backoff)
            finally:
                self._close(port)
                self._deliver(self._framer.idle())

    def _pump(self, port: serial.SerialBase, backoff: Backoff) -> None:
        start = self._start
        next_keepalive = time.monotonic() + self.keepalive_s
        if start:
            port.write(start)
        while not self._stopping.is_set():
            frames = self._framer.frames
            data = port.read(port.in_waiting or 1)
            reads = self._framer.feed(data) if data else self._framer.idle()
            if reads:
                backoff.reset()
                self._deliver(reads)
            now = time.monotonic()
            self._meter.update(now, self._framer.frames)
            if self._protocol.rearm_after_silence and self._framer.frames != frames:
                next_keepalive = now + self.keepalive_s
            if start and now >= next_keepalive:
                port.write(start)
                next_keepalive = now + self.keepalive_s

    def _close(self, port: serial.SerialBase) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            if self._protocol.stop:
                port.write(self._protocol.stop)
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()
