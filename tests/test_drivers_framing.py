"""Streaming framers: split frames, damaged frames, noise, random streams; over loop:// and a pty too."""

from __future__ import annotations

import contextlib
import os
import tty
from collections.abc import Callable, Iterator

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import em4100, m100, mercury
from drivers.errors import FrameError, ReaderError
from drivers.framing import M100Framer, make_framer, protocol
from drivers.types import TagRead

MANUAL_NOTICE = bytes.fromhex("BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E")
MANUAL_READ = TagRead("30751FEB705C5904E3D50D70", -55)
RDM6300_FRAME = bytes.fromhex("02 36 32 45 33 30 38 36 43 45 44 30 38 03")
ID12_FRAME = b"\x02" + b"62E3086CED08" + b"\r\n\x03"
LF_READ = TagRead("62E3086CED", None)

# protocol -> [(frame, the reads it yields)]
FIXTURES: dict[str, list[tuple[bytes, list[TagRead]]]] = {
    "m100": [
        (MANUAL_NOTICE, [MANUAL_READ]),
        (m100.encode_notice("E2801160600002084F6C4A51ABCD", -70), [TagRead("E2801160600002084F6C4A51ABCD", -70)]),
        (m100.encode_error(m100.ERROR_INVENTORY_FAIL), []),
        (m100.multiple_poll(), []),
    ],
    "rdm6300": [
        (RDM6300_FRAME, [LF_READ]),
        (em4100.encode_frame("0000000000", "rdm6300"), [TagRead("0000000000", None)]),
    ],
    "id12": [(ID12_FRAME, [LF_READ]), (em4100.encode_frame("FFFFFFFFFF", "id12"), [TagRead("FFFFFFFFFF", None)])],
    "mercury": [
        (
            mercury.encode_response(0x22, 0, mercury.encode_tag_record("30751FEB705C5904E3D50D70", -55, 2)),
            [TagRead("30751FEB705C5904E3D50D70", -55, 2)],
        ),
        (bytes.fromhex("ff00220400" + "%04x" % mercury.crc(bytes.fromhex("00220400"))), []),  # keep-alive
        (bytes.fromhex("ff0263000000052146"), []),  # a captured answer to "get tag protocol": Gen2
    ],
}
CASES = [(name, frame, reads) for name, cases in FIXTURES.items() for frame, reads in cases]
START = {"m100": m100.HEADER, "rdm6300": em4100.STX, "id12": em4100.STX, "mercury": mercury.HEADER}
CHECKSUM_AT = {"m100": -2, "mercury": -1}  # else the last hex digit of the ASCII checksum


def valid_frame(name: str, epc: str, rssi: int = -50) -> bytes:
    if name == "mercury":
        return mercury.encode_response(0x22, 0, mercury.encode_tag_record(epc, rssi))
    return m100.encode_notice(epc, rssi) if name == "m100" else em4100.encode_frame(epc[:10], name)


@pytest.mark.parametrize("name, frame, reads", CASES)
def test_every_fixture_split_at_every_offset(name: str, frame: bytes, reads: list[TagRead]) -> None:
    for offset in range(len(frame) + 1):
        framer = make_framer(name)
        assert framer.feed(frame[:offset]) + framer.feed(frame[offset:]) == reads
        assert (framer.frames, framer.bad_frames, framer.skipped_bytes) == (1, 0, 0)


@pytest.mark.parametrize("name, frame, reads", CASES)
def test_byte_by_byte(name: str, frame: bytes, reads: list[TagRead]) -> None:
    framer = make_framer(name)
    assert [r for i in range(len(frame)) for r in framer.feed(frame[i : i + 1])] == reads


@pytest.mark.parametrize("name", FIXTURES)
def test_corrupted_checksum_is_counted_and_the_next_frame_still_read(name: str) -> None:
    frame = FIXTURES[name][0][0]
    broken = bytearray(frame)
    position = len(frame) + CHECKSUM_AT[name] if name in CHECKSUM_AT else 12
    broken[position] = (
        (broken[position] + 1) % 256 if name in CHECKSUM_AT else ord("9" if broken[12] != ord("9") else "8")
    )
    framer = make_framer(name)
    assert framer.feed(bytes(broken) + frame) == FIXTURES[name][0][1]
    assert (framer.frames, framer.bad_frames) == (1, 1)
    assert framer.last_error is not None and ("checksum" in framer.last_error or "CRC" in framer.last_error)


def test_m100_notice_with_bad_epc_crc_is_a_bad_frame() -> None:
    payload = bytearray(MANUAL_NOTICE[5:-2])
    payload[-1] ^= 0x01  # the EPC CRC's low byte; the frame checksum is recomputed, so it is valid
    frame = m100.encode_frame(m100.TYPE_NOTICE, m100.CMD_INVENTORY, bytes(payload))
    framer = M100Framer()
    assert framer.feed(frame + MANUAL_NOTICE) == [MANUAL_READ]
    assert (framer.frames, framer.bad_frames) == (1, 1)
    assert "EPC CRC" in (framer.last_error or "")


def test_m100_error_responses_are_frames_and_real_errors_are_reported() -> None:
    framer = M100Framer()
    assert framer.feed(m100.encode_error(m100.ERROR_INVENTORY_FAIL)) == []
    assert (framer.frames, framer.reader_errors, framer.last_error) == (1, 0, None)
    assert framer.feed(m100.encode_error(0x17)) == []
    assert (framer.frames, framer.reader_errors, framer.last_error) == (2, 1, "reader answered command error")


def test_m100_implausible_length_resynchronises() -> None:
    framer = M100Framer()
    assert framer.feed(b"\xbb\x02\x22\xff\xff" + MANUAL_NOTICE) == [MANUAL_READ]
    assert framer.bad_frames == 1


@pytest.mark.parametrize("name", FIXTURES)
def test_noise_truncation_and_garbage_between_frames(name: str) -> None:
    frame, reads = FIXTURES[name][0]
    start = bytes((START[name],))
    stream = b"\x00\xff garbage" + frame[:7] + frame + start + b"\x13\x37" + frame + frame[:-1] + b"\n\n" + frame
    framer = make_framer(name)
    got = [r for i in range(0, len(stream), 5) for r in framer.feed(stream[i : i + 5])]
    assert got == reads * 3
    assert framer.frames == 3 and framer.bad_frames >= 3 and framer.skipped_bytes > 0


@pytest.mark.parametrize("name", FIXTURES)
def test_idle_drops_a_truncated_frame_that_hides_a_shorter_one(name: str) -> None:
    """A cut frame's length reaches past the bytes that follow it; silence proves it truncated."""
    if name in ("m100", "mercury"):
        hidden = valid_frame(name, "ABCD1234", -40)
        expected = [TagRead("ABCD1234", -40, 1 if name == "mercury" else None)]
        stream = (MANUAL_NOTICE[:5] if name == "m100" else FIXTURES[name][0][0][:3]) + hidden
    else:
        hidden, expected = FIXTURES[name][0]
        stream = FIXTURES[name][0][0][:3] + hidden
    framer = make_framer(name)
    got = framer.feed(stream)
    got += framer.idle()
    assert got == expected
    assert framer.bad_frames == 1
    assert framer.idle() == [] and framer.bad_frames == 1


@pytest.mark.parametrize("name", FIXTURES)
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=8))
def test_random_bytes_never_raise(name: str, data: bytes, cuts: list[int]) -> None:
    framer = make_framer(name)
    edges = [0, *sorted(cuts), len(data)]
    reads = [r for a, b in zip(edges, edges[1:]) for r in framer.feed(data[a:b])]
    reads += framer.idle()
    assert framer.reads == len(reads)
    assert all(isinstance(r, TagRead) for r in reads)
    assert framer.idle() == []


def noise_without(name: str) -> st.SearchStrategy[bytes]:
    """Noise that cannot itself start a frame (no start byte) nor complete a truncated ASCII one."""
    banned = {START[name]} | (set() if name in CHECKSUM_AT else set(b"0123456789ABCDEFabcdef\r\n\x03"))
    return st.binary(max_size=40).map(lambda b: bytes(x for x in b if x not in banned))


EPCS = st.sampled_from(["30751FEB705C5904E3D50D70", "3074257BF7194E4000001A85", "62E3086CEDAABBCCDDEEFF00", "ABCD"])


@st.composite
def streams(draw: st.DrawFn, name: str) -> tuple[bytes, list[TagRead], list[int]]:
    parts, expected = [], []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["frame", "noise", "truncated"]))
        epc = draw(EPCS) if name in CHECKSUM_AT else draw(EPCS)[:10].ljust(10, "0")
        frame = valid_frame(name, epc, draw(st.integers(-128, 127)) if name in CHECKSUM_AT else -50)
        if kind == "frame":
            parts.append(frame)
            expected.append(framing_read(name, frame))
        elif kind == "noise":
            parts.append(draw(noise_without(name)))
        else:
            parts.append(frame[: draw(st.integers(1, len(frame) - 1))])
    stream = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    return stream, expected, cuts


def framing_read(name: str, frame: bytes) -> TagRead:
    return make_framer(name).feed(frame)[0]


@pytest.mark.parametrize("name", FIXTURES)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_every_embedded_frame_is_recovered(name: str, data: st.DataObject) -> None:
    stream, expected, cuts = data.draw(streams(name))
    framer = make_framer(name)
    edges = [0, *cuts, len(stream)]
    reads = [r for a, b in zip(edges, edges[1:]) for r in framer.feed(stream[a:b])]
    assert reads + framer.idle() == expected
    assert framer.frames == len(expected)


def test_unknown_protocol_is_refused_by_name() -> None:
    with pytest.raises(ReaderError, match="known: m100, id12, rdm6300, mercury"):
        protocol("wiegand")


def mixed_stream(name: str) -> tuple[bytes, list[TagRead], int]:
    """About 3 KB: below a pty's (and loop://'s) 4 KB queue, so one write never blocks; and the damaged frames."""
    frame, reads = FIXTURES[name][0]
    unit = b"\x00noise" + frame + frame[:4] + frame
    times = 3000 // len(unit)
    return unit * times, reads * 2 * times, times


def loop_port(stream: bytes) -> serial.SerialBase:
    port = serial.serial_for_url("loop://", timeout=0.05)
    port.write(stream)
    return port


@contextlib.contextmanager
def pty_port(stream: bytes) -> Iterator[serial.SerialBase]:
    master, slave = os.openpty()
    try:
        tty.setraw(master)
        tty.setraw(slave)
        with serial.serial_for_url(os.ttyname(slave), baudrate=115200, timeout=0.05) as port:
            assert os.write(master, stream) == len(stream)  # after open, which flushes input
            yield port
    finally:
        os.close(slave)
        os.close(master)


@pytest.mark.parametrize("transport", [loop_port, pty_port], ids=["loop", "pty"])
@pytest.mark.parametrize("name", FIXTURES)
def test_framing_through_a_real_serial_port(name: str, transport: Callable) -> None:
    stream, expected, damaged = mixed_stream(name)
    framer = make_framer(name)
    reads: list[TagRead] = []
    with transport(stream) as port:
        while data := port.read(port.in_waiting or 1):  # everything was written before reading
            reads += framer.feed(data)
    reads += framer.idle()
    assert reads == expected
    assert framer.bad_frames == damaged


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 1), st.integers(0, 255), st.binary(max_size=30), st.integers(1, 60), st.integers(0, 255))
def test_m100_framer_accepts_exactly_what_the_codec_accepts(
    kind: int, command: int, payload: bytes, position: int, value: int
) -> None:
    """The framer inlines decode_frame's checks for speed; they must not drift apart."""
    frame = bytearray(m100.encode_frame(kind, command, payload))
    frame[position % (len(frame) - 1) + 1] = value  # any byte but the start byte
    try:
        m100.decode_frame(bytes(frame))
        valid = True
    except FrameError:
        valid = False
    framer = M100Framer()
    framer.feed(bytes(frame))
    framer.idle()
    assert (framer.frames == 1) == valid
