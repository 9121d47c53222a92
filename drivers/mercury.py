"""Frame codec of the ThingMagic/Jadak Mercury serial protocol (M6e Nano, M6e, M7e): bytes in, frames out.

A command is ``FF len opcode data crc``; a response is ``FF len opcode status(2) data crc``, where
``len`` counts the data only and every number is big-endian. The CRC is the CCITT polynomial 0x1021
run from 0xFFFF over ``len`` .. end of data the way ThingMagic's firmware runs it: shifted through
the register without the 16 trailing zero bits a textbook CRC-16/CCITT appends. That equals
``crc_hqx(body[:-2], 0x1D0F) ^ body[-2:]``, one C call; tests hold it to captured module frames.

In continuous reading the module streams one ``0x22`` (read tag ID multiple) response per tag
read: option, search flags, metadata flags, a record count, then per record the metadata the
flags ask for (in flag-bit order), the EPC length in bits (PC + EPC + tag CRC), PC, EPC and CRC.
A frame without data and status 0x0400 ("no tags found") is the module's once-a-second keep-alive.
Pure functions only: the streaming framer lives in :mod:`drivers.framing`.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from drivers.errors import FrameError
from drivers.types import TagRead

HEADER = 0xFF
COMMAND_OVERHEAD = 5  # header, length, opcode, CRC
RESPONSE_OVERHEAD = 7  # header, length, opcode, status, CRC
BAUDRATE = 115200

OP_READ_TAG_ID_MULTIPLE = 0x22
OP_MULTI_PROTOCOL_TAG_OP = 0x2F
OP_SET_TAG_PROTOCOL = 0x93
OP_SET_REGION = 0x97
OP_SET_READER_OPTIONAL_PARAMS = 0x9A

STATUS_OK = 0x0000
STATUS_NO_TAGS_FOUND = 0x0400  # the keep-alive of continuous reading
STATUS_NAMES = {
    0x0100: "message length invalid",
    0x0101: "invalid opcode",
    0x0105: "invalid parameter value",
    0x0400: "no tags found",
    0x0504: "temperature too high: reading throttled",
}

PROTOCOL_GEN2 = 0x05
REGIONS = {"na": 0x0D, "eu": 0x08, "in": 0x04, "jp": 0x05, "prc": 0x06, "kr": 0x09, "au": 0x0B, "nz": 0x0C}

# Metadata flags: which fields a tag record carries, in this order, with their sizes.
FLAG_READCOUNT, FLAG_RSSI, FLAG_ANTENNA, FLAG_FREQUENCY = 0x0001, 0x0002, 0x0004, 0x0008
FLAG_TIMESTAMP, FLAG_PHASE, FLAG_PROTOCOL, FLAG_DATA, FLAG_GPIO = 0x0010, 0x0020, 0x0040, 0x0080, 0x0100
FIXED_FIELDS = ((FLAG_READCOUNT, 1), (FLAG_RSSI, 1), (FLAG_ANTENNA, 1), (FLAG_FREQUENCY, 3), (FLAG_TIMESTAMP, 4))
FIELDS_AFTER = ((FLAG_PHASE, 2), (FLAG_PROTOCOL, 1))
ALL_METADATA = 0x01FF  # what the Universal Reader Assistant asks for; any subset parses

# The continuous read the Universal Reader Assistant starts: ``READ_TAG_ID_MULTIPLE`` with the
# metadata option (0x10), search flags 0x001B and a 1 s inner timeout, wrapped in a
# multi-protocol tag operation for Gen2 with option 1 (continuous).
CONTINUOUS = 0x01
STOP_CONTINUOUS = 0x02
SUB_OPTION_METADATA = 0x10
SEARCH_FLAGS = 0x001B
INNER_TIMEOUT_MS = 1000
READ_FILTER = 0x0C  # optional parameter: report a tag once per search; off, every read is reported


@dataclass(frozen=True)
class Response:
    """One checked response frame: its opcode, status word and data."""

    opcode: int
    status: int
    data: bytes


def crc(body: bytes | bytearray | memoryview) -> int:
    """ThingMagic's CRC over ``len`` .. end of data (at least ``len`` and ``opcode``)."""
    return binascii.crc_hqx(body[:-2], 0x1D0F) ^ (body[-2] << 8 | body[-1])


def encode_command(opcode: int, data: bytes = b"") -> bytes:
    """A command frame, host to module; raises FrameError for data over 255 bytes."""
    if len(data) > 0xFF:
        raise FrameError(data[:16], f"{len(data)} data bytes do not fit a Mercury frame")
    body = bytes((len(data), opcode)) + data
    return bytes((HEADER,)) + body + crc(body).to_bytes(2, "big")


def encode_response(opcode: int, status: int, data: bytes = b"") -> bytes:
    """A response frame, module to host (the simulator's side); raises FrameError when too long."""
    if len(data) > 0xFF:
        raise FrameError(data[:16], f"{len(data)} data bytes do not fit a Mercury frame")
    body = bytes((len(data), opcode)) + status.to_bytes(2, "big") + data
    return bytes((HEADER,)) + body + crc(body).to_bytes(2, "big")


def decode_response(raw: bytes | bytearray) -> Response:
    """Check one complete response frame (header, length, CRC); raises FrameError."""
    if len(raw) < RESPONSE_OVERHEAD or raw[0] != HEADER:
        raise FrameError(raw, "not a Mercury response")
    if len(raw) != raw[1] + RESPONSE_OVERHEAD:
        raise FrameError(raw, f"length field says {raw[1]} data bytes, frame has {len(raw) - RESPONSE_OVERHEAD}")
    expected = crc(raw[1:-2])
    if expected != raw[-2] << 8 | raw[-1]:
        raise FrameError(raw, f"CRC {raw[-2]:02X}{raw[-1]:02X}, computed {expected:04X}")
    return Response(raw[2], raw[3] << 8 | raw[4], bytes(raw[5:-2]))


def encode_tag_record(epc: str, rssi: int, antenna: int = 1, flags: int = ALL_METADATA) -> bytes:
    """The data of a streamed ``0x22`` response for one read, as the module sends it (the simulator's side)."""
    try:
        epc_bytes = bytes.fromhex(epc)
    except ValueError:
        raise FrameError(epc.encode(errors="replace"), "EPC is not hex") from None
    if len(epc_bytes) % 2 or not 0 < len(epc_bytes) <= 62:
        raise FrameError(epc_bytes, "EPC must be 1..31 whole 16-bit words")
    if not -128 <= rssi <= 127 or not 1 <= antenna <= 16:
        raise FrameError(epc_bytes, f"RSSI {rssi} or antenna {antenna} out of range")
    port = antenna & 0x0F  # the byte holds TX and RX port; port 16 wraps to 0
    values = {FLAG_READCOUNT: 1, FLAG_RSSI: rssi & 0xFF, FLAG_ANTENNA: port << 4 | port}
    record = bytearray()
    for flag, size in FIXED_FIELDS:
        if flags & flag:
            record += values.get(flag, 0).to_bytes(size, "big")
    for flag, size in FIELDS_AFTER:
        if flags & flag:
            record += (PROTOCOL_GEN2 if flag == FLAG_PROTOCOL else 0).to_bytes(size, "big")
    if flags & FLAG_DATA:
        record += b"\x00\x00"  # no embedded tag data
    if flags & FLAG_GPIO:
        record += b"\x00"
    pc = (len(epc_bytes) // 2) << 11
    tag = pc.to_bytes(2, "big") + epc_bytes
    tag_crc = binascii.crc_hqx(tag, 0xFFFF) ^ 0xFFFF  # the Gen2 CRC the tag backscatters
    record += ((len(tag) + 2) * 8).to_bytes(2, "big") + tag + tag_crc.to_bytes(2, "big")
    header = bytes((SUB_OPTION_METADATA,)) + SEARCH_FLAGS.to_bytes(2, "big") + flags.to_bytes(2, "big") + b"\x01"
    return header + bytes(record)


def decode_tag_records(data: bytes | bytearray) -> list[TagRead]:
    """The tag reads in a streamed ``0x22`` response's data; raises FrameError naming what is short.

    RSSI is a signed byte in dBm; the antenna is the receiving port (the byte's low nibble, 0
    meaning 16); a record without the RSSI or antenna flag reports None for it.
    """
    if len(data) < 6:
        raise FrameError(data, "tag response shorter than its header")
    flags = data[3] << 8 | data[4]
    count = data[5]
    pos = 6
    reads = []
    for _ in range(count):
        rssi = antenna = None
        for flag, size in FIXED_FIELDS:
            if flags & flag:
                _need(data, pos + size)
                if flag == FLAG_RSSI:
                    rssi = data[pos] - 256 if data[pos] > 127 else data[pos]
                elif flag == FLAG_ANTENNA:
                    antenna = (data[pos] & 0x0F) or 16
                pos += size
        pos += sum(size for flag, size in FIELDS_AFTER if flags & flag)
        if flags & FLAG_DATA:
            _need(data, pos + 2)
            pos += 2 + ((data[pos] << 8 | data[pos + 1]) + 7) // 8
        if flags & FLAG_GPIO:
            pos += 1
        _need(data, pos + 2)
        tag_bytes = ((data[pos] << 8 | data[pos + 1]) + 7) // 8
        pos += 2
        _need(data, pos + tag_bytes)
        if tag_bytes < 6:
            raise FrameError(data, f"tag of {tag_bytes} bytes cannot hold PC, EPC and CRC")
        pc_words = 1 + _extra_pc_words(data, pos)
        epc = data[pos + 2 * pc_words : pos + tag_bytes - 2]
        if not epc:
            raise FrameError(data, "tag record without EPC")
        reads.append(TagRead(epc.hex().upper(), rssi, antenna))
        pos += tag_bytes
    return reads


def _extra_pc_words(data: bytes | bytearray, pos: int) -> int:
    """XPC words after the PC: XPC_W1 when the PC's XI bit is set, XPC_W2 when W1's top bit is."""
    if not data[pos] & 0x02:
        return 0
    return 2 if pos + 2 < len(data) and data[pos + 2] & 0x80 else 1


def _need(data: bytes | bytearray, end: int) -> None:
    if end > len(data):
        raise FrameError(data, "tag record cut short")


def start_reading(region: str) -> bytes:
    """Gen2, the region, every read reported, then continuous reading; raises FrameError for an unknown region."""
    if region not in REGIONS:
        raise FrameError(region.encode(), f"unknown region; known: {', '.join(REGIONS)}")
    sub = (
        bytes((OP_READ_TAG_ID_MULTIPLE, SUB_OPTION_METADATA))
        + SEARCH_FLAGS.to_bytes(2, "big")
        + INNER_TIMEOUT_MS.to_bytes(2, "big")
        + ALL_METADATA.to_bytes(2, "big")
    )
    # timeout 0, continuous, the embedded opcode, search flags 0, Gen2, the embedded command's data length
    tag_op = b"\x00\x00" + bytes((CONTINUOUS, OP_READ_TAG_ID_MULTIPLE, 0, 0, PROTOCOL_GEN2, len(sub) - 1))
    return (
        encode_command(OP_SET_TAG_PROTOCOL, bytes((0, PROTOCOL_GEN2)))
        + encode_command(OP_SET_REGION, bytes((REGIONS[region],)))
        + encode_command(OP_SET_READER_OPTIONAL_PARAMS, bytes((1, READ_FILTER, 0)))
        + encode_command(OP_MULTI_PROTOCOL_TAG_OP, tag_op + sub)
    )


def stop_reading() -> bytes:
    """The command that ends continuous reading."""
    return encode_command(OP_MULTI_PROTOCOL_TAG_OP, bytes((0, 0, STOP_CONTINUOUS)))


def status_name(status: int) -> str:
    """A readable name for a response's status word."""
    return STATUS_NAMES.get(status, f"status 0x{status:04X}")
