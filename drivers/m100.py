"""Frame codec of the M100/YRM100 family of UHF EPC Gen2 modules: bytes in, frames out.

A frame is ``BB type cmd PL(2) payload checksum 7E``; the checksum is the low byte of the sum from
``type`` to the end of the payload. Pure functions only: the streaming framer and the transport
live in :mod:`drivers.framing` and :mod:`drivers.reader`.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from drivers.errors import FrameError
from drivers.types import TagRead

HEADER = 0xBB
END = 0x7E
OVERHEAD = 7  # header, type, command, two length bytes, checksum, end
MAX_PAYLOAD = 255  # the largest response of the module is far smaller; longer means noise

TYPE_COMMAND = 0x00
TYPE_RESPONSE = 0x01
TYPE_NOTICE = 0x02

CMD_INVENTORY = 0x22
CMD_MULTIPLE_POLL = 0x27
CMD_STOP_MULTIPLE_POLL = 0x28
CMD_ERROR = 0xFF

# Error codes of a type 0x01 / command 0xFF response, from the module's manual.
ERROR_INVENTORY_FAIL = 0x15  # "no tag in the field": the normal answer of an idle poll
ERROR_NAMES = {
    0x09: "read fail",
    0x10: "write fail",
    0x12: "kill fail",
    0x13: "lock fail",
    0x14: "block permalock fail",
    0x15: "inventory fail (no tag)",
    0x16: "access fail",
    0x17: "command error",
    0x20: "frequency hopping fail",
}


@dataclass(frozen=True)
class Frame:
    """One checked frame: its type, command and payload."""

    type: int
    command: int
    payload: bytes


def checksum(body: bytes | bytearray | memoryview) -> int:
    """Low byte of the sum of ``type`` .. end of payload."""
    return sum(body) & 0xFF


def epc_crc(pc_and_epc: bytes | bytearray | memoryview) -> int:
    """The EPC Gen2 CRC-16 (CRC-16/GENIBUS) a tag backscatters over PC + EPC.

    GENIBUS is poly 0x1021, init 0xFFFF, no reflection, final XOR 0xFFFF; ``crc_hqx`` is the same
    polynomial without the final XOR, so one C call does it.
    """
    return binascii.crc_hqx(pc_and_epc, 0xFFFF) ^ 0xFFFF


def encode_frame(frame_type: int, command: int, payload: bytes = b"") -> bytes:
    """Build a complete frame; raises FrameError when the payload is too long."""
    if len(payload) > MAX_PAYLOAD:
        raise FrameError(payload[:16], f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes((frame_type, command, len(payload) >> 8, len(payload) & 0xFF)) + payload
    return bytes((HEADER,)) + body + bytes((checksum(body), END))


def decode_frame(raw: bytes) -> Frame:
    """Check one complete frame (start, length, checksum, end); raises FrameError."""
    if len(raw) < OVERHEAD or raw[0] != HEADER:
        raise FrameError(raw, "not an M100 frame")
    length = raw[3] << 8 | raw[4]
    if len(raw) != OVERHEAD + length:
        raise FrameError(raw, f"length field says {length} payload bytes, frame has {len(raw) - OVERHEAD}")
    if raw[-1] != END:
        raise FrameError(raw, "missing end byte 7E")
    if checksum(raw[1:-2]) != raw[-2]:
        raise FrameError(raw, f"checksum {raw[-2]:02X}, computed {checksum(raw[1:-2]):02X}")
    return Frame(raw[1], raw[2], bytes(raw[5:-2]))


def multiple_poll(count: int = 65535) -> bytes:
    """The command that starts ``count`` inventory rounds (``BB 00 27 00 03 22 FF FF 4A 7E``)."""
    if not 0 < count <= 0xFFFF:
        raise FrameError(b"", f"poll count {count} is not in 1..65535")
    return encode_frame(TYPE_COMMAND, CMD_MULTIPLE_POLL, bytes((0x22, count >> 8, count & 0xFF)))


def stop_multiple_poll() -> bytes:
    """The command that stops a multiple poll (``BB 00 28 00 00 28 7E``)."""
    return encode_frame(TYPE_COMMAND, CMD_STOP_MULTIPLE_POLL)


def encode_notice(epc: str, rssi: int, pc_flags: int = 0) -> bytes:
    """An inventory notice as the module sends it for one tag read (used by the simulator).

    ``pc_flags`` are the PC's low 11 bits (e.g. 0x0400, the user-memory indicator); the length
    bits 15..11 always come from the EPC.
    """
    try:
        epc_bytes = bytes.fromhex(epc)
    except ValueError:
        raise FrameError(epc.encode(errors="replace"), "EPC is not hex") from None
    if len(epc_bytes) % 2 or not 0 < len(epc_bytes) <= 62:
        raise FrameError(epc_bytes, "EPC must be 1..31 whole 16-bit words")
    if not -128 <= rssi <= 127:
        raise FrameError(epc_bytes, f"RSSI {rssi} does not fit a signed byte")
    pc = (len(epc_bytes) // 2) << 11 | (pc_flags & 0x07FF)
    pc_epc = pc.to_bytes(2, "big") + epc_bytes
    payload = bytes((rssi & 0xFF,)) + pc_epc + epc_crc(pc_epc).to_bytes(2, "big")
    return encode_frame(TYPE_NOTICE, CMD_INVENTORY, payload)


def encode_error(code: int) -> bytes:
    """An error response, e.g. ``BB 01 FF 00 01 15 16 7E`` when a poll round found no tag."""
    return encode_frame(TYPE_RESPONSE, CMD_ERROR, bytes((code,)))


def decode_notice(payload: bytes | bytearray) -> TagRead:
    """RSSI, PC, EPC and CRC of an inventory notice's payload; raises FrameError.

    PC bits 15..11 give the EPC length in 16-bit words; the CRC covers PC + EPC.
    """
    if len(payload) < 5:
        raise FrameError(payload, "inventory notice shorter than RSSI + PC + CRC")
    epc_end = 3 + ((payload[1] >> 3) << 1)
    if len(payload) != epc_end + 2:
        raise FrameError(payload, f"PC says {epc_end - 3} EPC bytes, notice has {len(payload) - 5}")
    crc = payload[epc_end] << 8 | payload[epc_end + 1]
    if epc_crc(payload[1:epc_end]) != crc:
        raise FrameError(payload, f"EPC CRC {crc:04X} does not match PC + EPC")
    if epc_end == 3:  # a tag with PC length 0 has no identity to track, and HQ refuses an empty EPC
        raise FrameError(payload, "PC says the EPC is empty")
    rssi = payload[0]
    return TagRead(payload[3:epc_end].hex().upper(), rssi - 256 if rssi > 127 else rssi)


def error_name(code: int) -> str:
    """A readable name for an error response code."""
    return ERROR_NAMES.get(code, f"error 0x{code:02X}")
