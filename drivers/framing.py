"""Streaming framers: fed arbitrary chunks of a serial byte stream, they return the tag reads.

A framer keeps the bytes of a partial frame between calls. A bad checksum, a truncated frame or
line noise is counted and skipped, and the search resumes at the next start byte after the one
that failed, so a valid frame hiding behind a broken one is never lost. Nothing here raises on
input: the reader loop must survive any byte stream.

``idle()`` is for the transport to call when the line has been silent for a read timeout: a frame
still incomplete after that silence was truncated, so it is dropped and the bytes behind its start
byte are searched again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers import em4100, m100, mercury
from drivers.errors import FrameError, ReaderError
from drivers.types import TagRead


class Framer:
    """Counters and buffer shared by the protocol framers; subclasses implement ``_scan``."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0  # valid frames of any kind
        self.reads = 0  # tag reads among them
        self.bad_frames = 0
        self.skipped_bytes = 0  # bytes outside any frame candidate
        self.last_error: str | None = None  # the most recent bad frame or reader error

    def feed(self, data: bytes | bytearray) -> list[TagRead]:
        """Append a chunk and return the tag reads completed by it."""
        self._buffer += data
        return self._scan(final=False)

    def idle(self) -> list[TagRead]:
        """The line went silent: drop incomplete candidates and rescan behind them."""
        return self._scan(final=True)

    def _scan(self, final: bool) -> list[TagRead]:
        raise NotImplementedError

    def _bad(self, error: FrameError) -> None:
        self.bad_frames += 1
        self.last_error = str(error)

    def _seek(self, start_byte: int, pos: int) -> int:
        """The next frame start at or after ``pos``, or -1; the bytes passed over count as skipped."""
        buf = self._buffer
        start = buf.find(start_byte, pos)
        self.skipped_bytes += (len(buf) if start < 0 else start) - pos
        return start


class M100Framer(Framer):
    """Frames of the M100 family: length-prefixed, so the scan checks length, end byte, checksum."""

    def __init__(self) -> None:
        super().__init__()
        self.reader_errors = 0  # error responses other than "no tag in the field"

    def _scan(self, final: bool) -> list[TagRead]:
        # Hot loop (bench/bench_framers.py): the checks of m100.decode_frame, inlined on the buffer.
        buf = self._buffer
        size = len(buf)
        reads: list[TagRead] = []
        pos = 0
        while True:
            start = self._seek(0xBB, pos)
            if start < 0:
                pos = size
                break
            length = buf[start + 3] << 8 | buf[start + 4] if size - start >= 5 else 0
            if length > m100.MAX_PAYLOAD:
                self._bad(FrameError(buf[start : start + 5], f"implausible length {length}"))
                pos = start + 1
                continue
            end = start + 5 + length  # index of the checksum byte
            if end + 2 > size:
                if not final:
                    pos = start
                    break
                self._bad(FrameError(buf[start:], "truncated frame"))
                pos = start + 1
                continue
            if buf[end + 1] != 0x7E or sum(buf[start + 1 : end]) & 0xFF != buf[end]:
                self._bad(FrameError(buf[start : end + 2], "bad checksum or end byte"))
                pos = start + 1
                continue
            pos = end + 2
            kind = buf[start + 1]
            command = buf[start + 2]
            if kind == m100.TYPE_NOTICE and command == m100.CMD_INVENTORY:
                try:
                    reads.append(m100.decode_notice(buf[start + 5 : end]))
                except FrameError as error:
                    self._bad(error)
                    continue
            elif kind == m100.TYPE_RESPONSE and command == m100.CMD_ERROR and length == 1:
                code = buf[start + 5]
                if code != m100.ERROR_INVENTORY_FAIL:
                    self.reader_errors += 1
                    self.last_error = f"reader answered {m100.error_name(code)}"
            self.frames += 1
        del buf[:pos]
        self.reads += len(reads)
        return reads


class Em4100Framer(Framer):
    """Fixed-length ASCII frames of the ID-12 and RDM6300; STX never occurs inside a frame."""

    def __init__(self, protocol: str) -> None:
        super().__init__()
        self.protocol = protocol
        self._length = em4100.frame_length(protocol)

    def _scan(self, final: bool) -> list[TagRead]:
        buf = self._buffer
        size = len(buf)
        length = self._length
        reads: list[TagRead] = []
        pos = 0
        while True:
            start = self._seek(em4100.STX, pos)
            if start < 0:
                pos = size
                break
            if start + length > size:
                # Another STX inside the partial frame proves this one was cut short.
                if not final and buf.find(em4100.STX, start + 1) < 0:
                    pos = start
                    break
                self._bad(FrameError(buf[start:], "truncated frame"))
                pos = start + 1
                continue
            try:
                reads.append(em4100.decode_frame(buf[start : start + length], self.protocol))
            except FrameError as error:
                self._bad(error)
                pos = start + 1
                continue
            self.frames += 1
            pos = start + length
        del buf[:pos]
        self.reads += len(reads)
        return reads


class MercuryFramer(Framer):
    """Mercury responses: length-prefixed with a CRC; tag records, keep-alives and command answers.

    0xFF also occurs inside frames (metadata flags 0x01FF), so a rejected frame is rescanned from
    its second byte; candidates starting inside it that fail too are the same damage, counted once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reader_errors = 0  # status words other than OK and the keep-alive's "no tags found"

    def _scan(self, final: bool) -> list[TagRead]:
        buf = self._buffer
        size = len(buf)
        reads: list[TagRead] = []
        pos = 0
        damaged_until = 0  # end of the last rejected candidate
        while True:
            start = self._seek(mercury.HEADER, pos)
            if start < 0:
                pos = size
                break
            end = start + buf[start + 1] + mercury.RESPONSE_OVERHEAD if size - start >= 2 else size + 1
            error = None
            if end > size:
                if not final:
                    pos = start
                    break
                error = FrameError(buf[start:], "truncated frame")
            else:
                try:
                    response = mercury.decode_response(buf[start:end])
                    if response.opcode == mercury.OP_READ_TAG_ID_MULTIPLE and response.status == mercury.STATUS_OK:
                        reads += mercury.decode_tag_records(response.data)
                except FrameError as failed:
                    error = failed
            if error is not None:
                if start >= damaged_until:
                    self._bad(error)
                damaged_until = max(damaged_until, min(end, size))
                pos = start + 1
                continue
            if response.status not in (mercury.STATUS_OK, mercury.STATUS_NO_TAGS_FOUND):
                self.reader_errors += 1
                self.last_error = f"reader answered {mercury.status_name(response.status)}"
            self.frames += 1
            pos = end
        del buf[:pos]
        self.reads += len(reads)
        return reads


@dataclass(frozen=True)
class ReaderProtocol:
    """What the transport needs to know about a protocol."""

    name: str
    baudrate: int
    new_framer: Callable[[], Framer]
    start: bytes = b""  # sent after opening, and again every keepalive
    stop: bytes = b""  # sent before closing
    rearm_after_silence: bool = False  # re-send start only after keepalive_s without a frame (else every keepalive_s)


PROTOCOLS: dict[str, ReaderProtocol] = {
    "m100": ReaderProtocol("m100", 115200, M100Framer, m100.multiple_poll(), m100.stop_multiple_poll()),
    "id12": ReaderProtocol("id12", 9600, lambda: Em4100Framer("id12")),
    "rdm6300": ReaderProtocol("rdm6300", 9600, lambda: Em4100Framer("rdm6300")),
    # A streaming module sends a keep-alive every second: silence means it stopped (a reset), so start it again.
    "mercury": ReaderProtocol(
        "mercury", mercury.BAUDRATE, MercuryFramer, mercury.start_reading("eu"), mercury.stop_reading(), True
    ),
}


def protocol(name: str) -> ReaderProtocol:
    """The protocol called ``name``; raises ReaderError naming the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ReaderError(f"unknown reader protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None


def make_framer(name: str) -> Framer:
    """A fresh framer for protocol ``name``."""
    return protocol(name).new_framer()
