"""The Mercury (ThingMagic/Jadak M6e Nano) codec: CRC against captured module frames, the tag
record layout, commands, statuses; hypothesis proves arbitrary bytes never raise into the loop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import mercury
from drivers.errors import FrameError
from drivers.framing import MercuryFramer
from drivers.types import TagRead

# Frames a ThingMagic module and its host exchanged, captured on the serial line (commands and
# responses: boot, version, region, tag protocol, read power, antenna, a single tag read).
CAPTURED = [
    "ff00041d0b",
    "ff1404000007102300010000032014100701070209000000105251",
    "ff00031d0c",
    "ff1403000007102300010000032014100701070209000000105bd1",
    "ff0197024bbf",
    "ff00970000779e",
    "ff0263000000002143",
    "ff02930005517d",
    "ff076200000108fc08fc03e87ac9",
    "ff03610000010100215b",
    "ff022103e8d509",
    "ff0e210000e200322fe20df9311328b7e3d100aad0",
    "ff00210400b483",
]
EPC = "3074257BF7194E4000001A85"


@pytest.mark.parametrize("frame", CAPTURED)
def test_crc_matches_every_captured_frame(frame: str) -> None:
    raw = bytes.fromhex(frame)
    assert mercury.crc(raw[1:-2]) == int.from_bytes(raw[-2:], "big")


def test_commands_are_built_as_the_module_expects_them() -> None:
    assert mercury.encode_command(0x03) == bytes.fromhex("ff00031d0c")  # version
    assert mercury.encode_command(mercury.OP_SET_TAG_PROTOCOL, b"\x00\x05") == bytes.fromhex("ff02930005517d")
    assert mercury.decode_response(bytes.fromhex("ff00970000779e")) == mercury.Response(0x97, 0, b"")
    assert mercury.decode_response(bytes.fromhex("ff00210400b483")).status == mercury.STATUS_NO_TAGS_FOUND


def test_a_tag_record_has_the_documented_layout() -> None:
    """RSSI at byte 12, antenna (TX and RX nibbles) at 13, protocol at 23, EPC length in bits at 27."""
    frame = mercury.encode_response(0x22, 0, mercury.encode_tag_record(EPC, -60, antenna=2))
    assert frame[:3] == bytes.fromhex("ff2822") and frame[1] + 7 == len(frame)
    assert frame[5:11] == bytes.fromhex("10001b01ff01")  # option, search flags, metadata flags, one record
    assert frame[12] == 256 - 60 and frame[13] == 0x22 and frame[23] == mercury.PROTOCOL_GEN2
    assert int.from_bytes(frame[27:29], "big") == 128 and frame[29:31] == b"\x30\x00"
    assert frame[31:43].hex().upper() == EPC
    assert mercury.decode_tag_records(mercury.decode_response(frame).data) == [TagRead(EPC, -60, 2)]


@pytest.mark.parametrize("flags", [mercury.ALL_METADATA, 0x0006, 0x0000, 0x0002, 0x00C5])
def test_any_set_of_metadata_flags_parses(flags: int) -> None:
    (read,) = mercury.decode_tag_records(mercury.encode_tag_record(EPC, -47, antenna=16, flags=flags))
    assert read.epc == EPC
    assert read.rssi == (-47 if flags & mercury.FLAG_RSSI else None)
    assert read.antenna == (16 if flags & mercury.FLAG_ANTENNA else None)


def test_embedded_data_xpc_and_several_records() -> None:
    header = bytes.fromhex("10 001b 0086 02")  # option, search flags, flags RSSI|antenna|data, two records
    first = bytes.fromhex("d8 11 000c aabb 0030 0800 abcd 3799")  # 12 bits of embedded data; PC, EPC, CRC
    second = bytes.fromhex("d7 33 0000 0040 0a00 0000 1234 ed3a")  # the PC's XI bit: an XPC word follows it
    assert mercury.decode_tag_records(header + first + second) == [TagRead("ABCD", -40, 1), TagRead("1234", -41, 3)]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x10\x00", "shorter than its header"),
        (mercury.encode_tag_record(EPC, -50)[:-5], "cut short"),
        (b"\x10\x00\x1b\x00\x00\x01\x00\x20" + b"\x30\x00\x12\x34", "cannot hold"),
    ],
)
def test_broken_tag_records_say_why(data: bytes, says: str) -> None:
    with pytest.raises(FrameError, match=says):
        mercury.decode_tag_records(data)


def test_statuses_other_than_ok_and_keepalive_are_reader_errors() -> None:
    framer = MercuryFramer()
    assert framer.feed(mercury.encode_response(0x22, mercury.STATUS_NO_TAGS_FOUND)) == []
    assert (framer.frames, framer.reader_errors, framer.last_error) == (1, 0, None)
    assert framer.feed(mercury.encode_response(0x97, 0x0105)) == []
    assert framer.reader_errors == 1 and framer.last_error == "reader answered invalid parameter value"
    assert framer.feed(mercury.encode_response(0x22, 0x0504)) == []  # throttled: a status, not a tag record
    assert framer.reader_errors == 2 and "temperature" in (framer.last_error or "")


def test_start_and_stop_commands() -> None:
    start = mercury.start_reading("na")
    assert start.startswith(bytes.fromhex("ff02930005517d"))  # Gen2 first
    assert mercury.encode_command(mercury.OP_SET_REGION, b"\x0d") in start
    assert mercury.encode_command(mercury.OP_SET_READER_OPTIONAL_PARAMS, b"\x01\x0c\x00") in start
    # the multi-protocol tag operation exactly as the Universal Reader Assistant starts continuous reading
    assert start.endswith(mercury.encode_command(0x2F, bytes.fromhex("0000 01 22 0000 05 07 22 10 001b 03e8 01ff")))
    assert mercury.stop_reading() == mercury.encode_command(0x2F, b"\x00\x00\x02")
    with pytest.raises(FrameError, match="unknown region"):
        mercury.start_reading("mars")


@pytest.mark.parametrize(("epc", "rssi", "antenna"), [("ABC", -50, 1), (EPC, -129, 1), (EPC, -50, 17), ("", -5, 1)])
def test_the_encoder_refuses_what_no_module_sends(epc: str, rssi: int, antenna: int) -> None:
    with pytest.raises(FrameError):
        mercury.encode_tag_record(epc, rssi, antenna)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_any_record_data_parses_or_raises_frame_error(data: bytes) -> None:
    try:
        reads = mercury.decode_tag_records(data)
    except FrameError:
        return
    assert all(isinstance(r, TagRead) and r.epc for r in reads)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([EPC, "ABCD", "E2801160600002084F6C4A51ABCD"]), st.integers(-99, -20)), max_size=6
    ),
    st.binary(max_size=30),
    st.integers(0, 200),
    st.integers(0, 255),
)
def test_a_damaged_byte_costs_at_most_its_frame(
    tags: list[tuple[str, int]], noise: bytes, position: int, value: int
) -> None:
    """Frames with one byte overwritten and noise in front: never raises, resynchronises, and every
    frame the damage did not touch is still read."""
    frames = [mercury.encode_response(0x22, 0, mercury.encode_tag_record(epc, rssi, 1)) for epc, rssi in tags]
    stream = bytearray(noise + b"".join(frames))
    hit = position % len(stream) if stream else -1
    if stream and stream[hit] != value:
        stream[hit] = value
    else:
        hit = -1  # nothing damaged
    framer = MercuryFramer()
    reads = framer.feed(bytes(stream)) + framer.idle()
    offset = len(noise)
    untouched = []
    for frame, (epc, rssi) in zip(frames, tags):
        if not offset <= hit < offset + len(frame):
            untouched.append(TagRead(epc, rssi, 1))
        offset += len(frame)
    assert [r for r in reads if r in untouched] == untouched
    assert framer.idle() == []
