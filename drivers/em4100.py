"""Frame codec of the 125 kHz EM4100 readers that speak ASCII: ID-12LA/ID-20LA and RDM6300.

Both send STX, 10 hex digits of tag id, 2 hex digits of checksum (XOR of the 5 id bytes) and a
trailer: CR LF ETX for the ID-12, ETX for the RDM6300. They repeat the frame while a card is in
the field and fall silent when it leaves. Pure functions only.
"""

from __future__ import annotations

from drivers.errors import FrameError
from drivers.types import TagRead

STX = 0x02
ETX = 0x03
TRAILERS = {"id12": b"\r\n\x03", "rdm6300": b"\x03"}
HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


def frame_length(protocol: str) -> int:
    """STX + 12 hex digits + the protocol's trailer."""
    return 13 + len(TRAILERS[protocol])


def xor_checksum(tag: bytes) -> int:
    """XOR of the id bytes, as both readers compute it."""
    result = 0
    for byte in tag:
        result ^= byte
    return result


def encode_frame(tag_id: str, protocol: str) -> bytes:
    """The frame a reader sends for ``tag_id`` (10 hex digits); raises FrameError."""
    try:
        tag = bytes.fromhex(tag_id)
    except ValueError:
        tag = b""
    if len(tag) != 5 or len(tag_id) != 10:
        raise FrameError(tag_id.encode(errors="replace"), "a 125 kHz tag id is 10 hex digits")
    digits = f"{tag.hex().upper()}{xor_checksum(tag):02X}".encode("ascii")
    return bytes((STX,)) + digits + TRAILERS[protocol]


def decode_frame(raw: bytes | bytearray, protocol: str) -> TagRead:
    """The tag read of one complete frame; raises FrameError with the raw bytes."""
    trailer = TRAILERS[protocol]
    if len(raw) != frame_length(protocol) or raw[0] != STX:
        raise FrameError(raw, f"not a {protocol} frame")
    if not raw.endswith(trailer):
        raise FrameError(raw, f"{protocol} frame does not end with {trailer.hex(' ')}")
    digits = raw[1:13]
    if not HEX_DIGITS.issuperset(digits):
        raise FrameError(raw, "tag id and checksum must be hex digits")
    values = bytes.fromhex(digits.decode("ascii"))
    if xor_checksum(values[:5]) != values[5]:
        raise FrameError(raw, f"checksum {values[5]:02X}, computed {xor_checksum(values[:5]):02X}")
    return TagRead(values[:5].hex().upper(), None)
