"""A virtual RFID reader: real protocol frames written to a pseudo-terminal.

Point any pyserial consumer (the kiosk's reader, a test, a benchmark) at ``Simulator.path`` and it
sees what a USB reader would send. Driven like a gpiozero mock pin: ``present(epc, rssi)`` puts a
tag in the field, ``remove(epc)`` takes it out; while present, each tag is read ``rate`` times a
second. A Mercury module has antenna ports: ``present(epc, rssi, antenna=2)`` has port 2 hear the
tag too (each port its own RSSI), as the two cabins of a multi-antenna reader would; it also sends
the module's keep-alive once a second. A share ``noise`` of the frames is damaged the ways a real
line damages them: a corrupted checksum, garbage bytes after the frame, or a frame cut short.
Bytes the consumer sends (M100 poll, Mercury start) are kept in ``received``. Scenarios
(``drivers.scenario``) script the tags over time.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import tty
from collections.abc import Callable, Iterable, Mapping, Sequence

from drivers import em4100, m100, mercury
from drivers.errors import FrameError, ReaderError
from drivers.scenario import Step, due, load

NOISE_KINDS = ("checksum", "garbage", "truncate")
RSSI_JITTER = 3  # dBm either side of a tag's RSSI, read to read
LOOP_GAP_S = 5.0  # pause after a looping scenario's last step before it starts over
RECEIVED_LIMIT = 64 * 1024


PROTOCOLS = ("m100", "mercury", *em4100.TRAILERS)
MULTI_ANTENNA = ("mercury",)


def encode_read(protocol: str, epc: str, rssi: int, antenna: int = 1) -> bytes:
    """The frame a reader of ``protocol`` sends for one read; raises FrameError for a bad tag or port."""
    if protocol == "mercury":
        record = mercury.encode_tag_record(epc, max(-128, min(127, rssi)), antenna)
        return mercury.encode_response(mercury.OP_READ_TAG_ID_MULTIPLE, mercury.STATUS_OK, record)
    if protocol not in PROTOCOLS:
        raise ReaderError(f"unknown reader protocol {protocol!r}")
    if antenna != 1:
        raise FrameError(epc.encode(errors="replace"), f"a {protocol} reader has one antenna, not port {antenna}")
    if protocol == "m100":
        return m100.encode_notice(epc, max(-128, min(127, rssi)))
    return em4100.encode_frame(epc, protocol)


def damage(frame: bytes, protocol: str, rng: random.Random) -> bytes:
    """One kind of line damage applied to a frame, chosen at random."""
    kind = rng.choice(NOISE_KINDS)
    if kind == "garbage":
        return frame + rng.randbytes(rng.randint(1, 8))
    if kind == "truncate":
        return frame[: rng.randrange(1, len(frame))]
    damaged = bytearray(frame)
    if protocol == "m100":
        damaged[-2] ^= rng.randint(1, 255)
    elif protocol == "mercury":
        damaged[-1] ^= rng.randint(1, 255)
    else:  # the last checksum digit becomes another hex digit
        damaged[12] = rng.choice([d for d in b"0123456789ABCDEF" if d != damaged[12]])
    return bytes(damaged)


def burst(protocol: str, field: Mapping[tuple[str, int], int], noise: float, rng: random.Random) -> bytes:
    """One read of every tag on every port that hears it, with jittered RSSI and the given share of damage."""
    out = bytearray()
    for (epc, antenna), rssi in field.items():
        frame = encode_read(protocol, epc, rssi + rng.randint(-RSSI_JITTER, RSSI_JITTER), antenna)
        out += damage(frame, protocol, rng) if rng.random() < noise else frame
    return bytes(out)


def check_steps(protocol: str, steps: Iterable[Step]) -> None:
    """Raise FrameError now for any tag the protocol cannot send, rather than mid-run."""
    for step in steps:
        for epc, rssi in step.present:
            encode_read(protocol, epc, rssi)


class Simulator:
    """A virtual reader on a fresh pseudo-terminal; close it (or use ``with``) to unplug it."""

    def __init__(self, protocol: str = "m100", rate: float = 20.0, noise: float = 0.0, seed: int | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ReaderError(f"unknown reader protocol {protocol!r}")
        if rate <= 0 or not 0 <= noise <= 1:
            raise ReaderError(f"rate must be > 0 and noise in 0..1 (got rate={rate}, noise={noise})")
        self.protocol = protocol
        self.rate = rate
        self.noise = noise
        self.received = bytearray()
        self.bytes_written = 0
        self.bytes_dropped = 0  # nobody read them and the pty buffer was full
        self._rng = random.Random(seed)
        self._field: dict[tuple[str, int], int] = {}  # (epc, antenna port) -> RSSI
        self._ticks = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master, self._slave = os.openpty()
        # Raw on both ends: no echo, no CR/LF translation, every byte passes as sent.
        tty.setraw(self._master)
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)

    def present(self, epc: str, rssi: int = -50, antenna: int = 1) -> None:
        """Have port ``antenna`` hear a tag (or at another RSSI); raises FrameError for a tag or port
        this protocol cannot send."""
        epc = epc.upper()
        encode_read(self.protocol, epc, rssi, antenna)
        with self._lock:
            self._field[epc, antenna] = rssi

    def remove(self, epc: str, antenna: int | None = None) -> None:
        """Take a tag out of the field (or out of one port's reach); the reader simply stops seeing it."""
        epc = epc.upper()
        with self._lock:
            for key in [key for key in self._field if key[0] == epc and antenna in (None, key[1])]:
                del self._field[key]

    def clear(self) -> None:
        """Empty the field."""
        with self._lock:
            self._field.clear()

    @property
    def tags(self) -> dict[str, int]:
        """The tags in the field now, each with the RSSI of the port that hears it loudest."""
        with self._lock:
            loudest: dict[str, int] = {}
            for (epc, _), rssi in self._field.items():
                loudest[epc] = max(rssi, loudest.get(epc, rssi))
            return loudest

    @property
    def field(self) -> dict[tuple[str, int], int]:
        """(EPC, antenna port) -> RSSI of every tag each port hears now."""
        with self._lock:
            return dict(self._field)

    def apply(self, step: Step) -> None:
        """Carry out one scenario step."""
        for epc in step.remove:
            self.remove(epc)
        for epc, rssi in step.present:
            self.present(epc, rssi)

    def tick(self) -> None:
        """One read of every present tag written to the pty; the consumer's bytes drained."""
        data = burst(self.protocol, self.field, self.noise, self._rng)
        if self.protocol == "mercury" and self._ticks % max(1, round(self.rate)) == 0:
            data += mercury.encode_response(mercury.OP_READ_TAG_ID_MULTIPLE, mercury.STATUS_NO_TAGS_FOUND)
        self._ticks += 1
        if data:
            self._write(data)
        self._drain()

    def play(
        self,
        steps: Sequence[Step],
        stop: threading.Event,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Run a scenario until ``stop`` is set; after the last step the field stays as it is,
        or, with ``loop``, stays ``LOOP_GAP_S``, then empties and the scenario starts over."""
        length = max((step.at for step in steps), default=0.0)
        started, done = clock(), -1.0
        while not stop.is_set():
            elapsed = clock() - started
            for step in due(steps, done, elapsed):
                self.apply(step)
            done = elapsed
            if loop and steps and elapsed >= length + LOOP_GAP_S:
                self.clear()
                started, done = clock(), -1.0
            self.tick()
            stop.wait(1 / self.rate)

    def start(self, steps: Sequence[Step] = (), loop: bool = False) -> None:
        """``play`` in a background thread (tests, the demo); ``stop()`` ends it."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.play, args=(steps, self._stop, loop), daemon=True, name="simulator")
        self._thread.start()

    def stop(self) -> None:
        """End a background ``start``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop and close both ends of the pty: to the consumer, the reader was unplugged."""
        self.stop()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, data: bytes) -> None:
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        self.bytes_written += written
        self.bytes_dropped += len(data) - written

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # EAGAIN: nothing sent; EIO: no consumer has the pty open
                return
            if not chunk:
                return
            self.received += chunk
            del self.received[:-RECEIVED_LIMIT]


def run_cli(protocol: str, scenario: str, rate: float, noise: float, loop: bool) -> None:
    """``touchpoint simulate-reader``: print the pty path, play the scenario until Ctrl-C/SIGTERM."""
    try:
        steps = load(scenario, protocol)
        check_steps(protocol, steps)
        simulator = Simulator(protocol, rate, noise)
    except ReaderError as error:
        raise SystemExit(f"simulate-reader: {error}") from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with simulator:
            print(simulator.path, flush=True)
            simulator.play(steps, stop, loop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
