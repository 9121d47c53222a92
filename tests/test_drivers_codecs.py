"""Pure frame codecs: the manuals' vectors, checks that keep the raw bytes, encode/decode round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import TouchpointError
from drivers import em4100, m100
from drivers.errors import FrameError, ReaderError
from drivers.types import TagRead

MANUAL_NOTICE = bytes.fromhex("BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E")


def test_m100_commands_match_the_manual() -> None:
    assert m100.multiple_poll(65535) == bytes.fromhex("BB 00 27 00 03 22 FF FF 4A 7E")
    assert m100.stop_multiple_poll() == bytes.fromhex("BB 00 28 00 00 28 7E")
    assert m100.encode_error(0x15) == bytes.fromhex("BB 01 FF 00 01 15 16 7E")


def test_m100_manual_notice_decodes_and_encodes() -> None:
    frame = m100.decode_frame(MANUAL_NOTICE)
    assert (frame.type, frame.command) == (m100.TYPE_NOTICE, m100.CMD_INVENTORY)
    assert m100.decode_notice(frame.payload) == TagRead("30751FEB705C5904E3D50D70", -55)
    assert m100.epc_crc(bytes.fromhex("3400 30751FEB705C5904E3D50D70")) == 0x3A76
    assert m100.encode_notice("30751FEB705C5904E3D50D70", -55, pc_flags=0x0400) == MANUAL_NOTICE


@pytest.mark.parametrize(
    "raw, reason",
    [
        (MANUAL_NOTICE[:-1], "length field"),
        (MANUAL_NOTICE[:-1] + b"\x00", "end byte"),
        (MANUAL_NOTICE[:-2] + b"\x00\x7e", "checksum"),
        (b"\xaa" + MANUAL_NOTICE[1:], "not an M100 frame"),
    ],
)
def test_m100_bad_frames_keep_their_bytes(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason) as caught:
        m100.decode_frame(raw)
    assert caught.value.raw == raw
    assert isinstance(caught.value, (ReaderError, ValueError, TouchpointError))


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xc9\x34", "shorter"),
        (MANUAL_NOTICE[5:-3], "PC says"),
        (MANUAL_NOTICE[5:-4] + b"\x00\x00", "EPC CRC"),
        (b"\xc9\x00\x00" + m100.epc_crc(b"\x00\x00").to_bytes(2, "big"), "EPC is empty"),  # a sound frame, no EPC
    ],
)
def test_m100_bad_notices(payload: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason) as caught:
        m100.decode_notice(payload)
    assert caught.value.raw == payload


@pytest.mark.parametrize(
    "call",
    [
        lambda: m100.encode_notice("XYZ", -50),
        lambda: m100.encode_notice("ABC123", -50),  # three bytes: not whole words
        lambda: m100.encode_notice("", -50),
        lambda: m100.encode_notice("AB" * 64, -50),
        lambda: m100.encode_notice("ABCD", -129),
        lambda: m100.multiple_poll(0),
        lambda: m100.encode_frame(0, 0, bytes(256)),
    ],
)
def test_m100_encoders_refuse_bad_input(call: object) -> None:
    with pytest.raises(FrameError):
        call()  # type: ignore[operator]


@given(st.binary(min_size=1, max_size=31).map(lambda b: (b * 2).hex().upper()), st.integers(-128, 127))
def test_m100_notice_round_trip(epc: str, rssi: int) -> None:
    frame = m100.decode_frame(m100.encode_notice(epc, rssi))
    assert m100.decode_notice(frame.payload) == TagRead(epc, rssi)


def test_rdm6300_frame_from_the_issue() -> None:
    frame = bytes.fromhex("02 36 32 45 33 30 38 36 43 45 44 30 38 03")
    assert em4100.decode_frame(frame, "rdm6300") == TagRead("62E3086CED", None)
    assert em4100.encode_frame("62E3086CED", "rdm6300") == frame
    assert em4100.encode_frame("62e3086ced", "id12") == b"\x0262E3086CED08\r\n\x03"


@pytest.mark.parametrize(
    "raw, protocol, reason",
    [
        (b"\x0262E3086CED09\x03", "rdm6300", "checksum 09, computed 08"),
        (b"\x0262E3086CED08\x03", "id12", "not a id12 frame"),
        (b"\x0262E3086CED08\r\r\x03", "id12", "does not end with"),
        (b"\x0262E3086CXD08\x03", "rdm6300", "hex digits"),
        (b"\x0362E3086CED08\x03", "rdm6300", "not a rdm6300 frame"),
    ],
)
def test_em4100_bad_frames_keep_their_bytes(raw: bytes, protocol: str, reason: str) -> None:
    with pytest.raises(FrameError, match=reason) as caught:
        em4100.decode_frame(raw, protocol)
    assert caught.value.raw == raw


@pytest.mark.parametrize("tag", ["62E3086C", "62E3086CEDAA", "62E3086CEG", "62E3086C D"])
def test_em4100_tag_ids_are_ten_hex_digits(tag: str) -> None:
    with pytest.raises(FrameError, match="10 hex digits"):
        em4100.encode_frame(tag, "rdm6300")


@given(st.binary(min_size=5, max_size=5), st.sampled_from(["id12", "rdm6300"]))
def test_em4100_round_trip(tag: bytes, protocol: str) -> None:
    frame = em4100.encode_frame(tag.hex(), protocol)
    assert len(frame) == em4100.frame_length(protocol)
    assert em4100.decode_frame(frame, protocol) == TagRead(tag.hex().upper(), None)
