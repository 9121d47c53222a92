"""GS1 EPC Tag Data Standard: SGTIN-96 and SGTIN-198 to GTIN-14 + serial, and back.

Garment tags carry an SGTIN: the GTIN of the article plus a serial per piece. The partition value
says how the 44 bits after the filter split into GS1 company prefix and item reference (TDS table
"SGTIN Partition Table"). Any other EPC decodes to None; Touchpoint then keeps the tag by its hex.
Written here rather than taken from pyepc, which is unmaintained and does not keep the filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.errors import EpcError

SGTIN96_HEADER = 0x30
SGTIN198_HEADER = 0x36

# partition -> (company prefix bits, company prefix digits, item reference bits); the item
# reference (with its leading indicator digit) has 13 - company prefix digits.
PARTITIONS = {
    0: (40, 12, 4),
    1: (37, 11, 7),
    2: (34, 10, 10),
    3: (30, 9, 14),
    4: (27, 8, 17),
    5: (24, 7, 20),
    6: (20, 6, 24),
}
SERIAL96_BITS = 38
SERIAL198_CHARS = 20
# The GS1 AI encodable character set 82, the alphabet of an SGTIN-198 serial.
CHARSET_82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
# Characters a tag URI writes as %XX (TDS, "EPC URI" syntax).
URI_ESCAPES = {c: f"%{ord(c):02X}" for c in '"%&/<>?'}


@dataclass(frozen=True)
class Sgtin:
    """A decoded SGTIN. ``item_reference`` includes the indicator digit, as in the tag URI."""

    scheme: str  # "sgtin-96" or "sgtin-198"
    filter: int
    partition: int
    company_prefix: str
    item_reference: str
    serial: str

    @property
    def gtin(self) -> str:
        """GTIN-14: indicator, company prefix, rest of the item reference, check digit."""
        body = self.item_reference[0] + self.company_prefix + self.item_reference[1:]
        return body + check_digit(body)

    @property
    def uri(self) -> str:
        """The EPC tag URI, which keeps the filter: ``urn:epc:tag:sgtin-96:3.0614141.812345.6789``."""
        return f"urn:epc:tag:{self.scheme}:{self.filter}.{self._identity()}"

    @property
    def pure_identity_uri(self) -> str:
        """The pure identity URI, without filter and scheme: ``urn:epc:id:sgtin:...``."""
        return f"urn:epc:id:sgtin:{self._identity()}"

    def _identity(self) -> str:
        serial = "".join(URI_ESCAPES.get(c, c) for c in self.serial)
        return f"{self.company_prefix}.{self.item_reference}.{serial}"


def check_digit(digits: str) -> str:
    """GS1 mod-10 check digit: weights 3, 1, 3, ... from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str(-total % 10)


HEX = re.compile(r"[0-9A-Fa-f]+")  # int(..., 16) alone would also take '0x', '_', '+' and spaces


def decode_epc(epc_hex: object) -> Sgtin | None:
    """The SGTIN an EPC carries, or None for any other or malformed EPC and for anything that is not
    hex text (never raises)."""
    if not isinstance(epc_hex, str) or not HEX.fullmatch(epc_hex):
        return None
    value = int(epc_hex, 16)
    bits = len(epc_hex) * 4
    if bits >= 96 and value >> (bits - 8) == SGTIN96_HEADER:
        return _decode_sgtin96(value >> (bits - 96))
    if bits >= 198 and value >> (bits - 8) == SGTIN198_HEADER:
        return _decode_sgtin198(value >> (bits - 198))
    return None


def gtin_for_epc(epc_hex: object) -> str | None:
    """The GTIN-14 of an SGTIN EPC, else None."""
    sgtin = decode_epc(epc_hex)
    return sgtin.gtin if sgtin else None


def _decode_head(value: int, tail_bits: int) -> tuple[int, int, str, str] | None:
    """Filter, partition, company prefix and item reference above ``tail_bits`` of serial."""
    filter_value = (value >> (tail_bits + 47)) & 0x7
    partition = (value >> (tail_bits + 44)) & 0x7
    if partition not in PARTITIONS:
        return None
    prefix_bits, prefix_digits, item_bits = PARTITIONS[partition]
    prefix = (value >> (tail_bits + item_bits)) & ((1 << prefix_bits) - 1)
    item = (value >> tail_bits) & ((1 << item_bits) - 1)
    item_digits = 13 - prefix_digits
    if prefix >= 10**prefix_digits or item >= 10**item_digits:
        return None
    return filter_value, partition, f"{prefix:0{prefix_digits}d}", f"{item:0{item_digits}d}"


def _decode_sgtin96(value: int) -> Sgtin | None:
    head = _decode_head(value, SERIAL96_BITS)
    if head is None:
        return None
    serial = value & ((1 << SERIAL96_BITS) - 1)
    return Sgtin("sgtin-96", *head, str(serial))


def _decode_sgtin198(value: int) -> Sgtin | None:
    tail_bits = 7 * SERIAL198_CHARS
    head = _decode_head(value, tail_bits)
    if head is None:
        return None
    codes = [(value >> (7 * (SERIAL198_CHARS - 1 - i))) & 0x7F for i in range(SERIAL198_CHARS)]
    length = codes.index(0) if 0 in codes else SERIAL198_CHARS
    serial = "".join(map(chr, codes[:length]))
    if not serial or any(codes[length:]) or not CHARSET_82.issuperset(serial):
        return None
    return Sgtin("sgtin-198", *head, serial)


def _encode_head(header: int, gtin: str, company_prefix_length: int, filter: int) -> tuple[int, int]:
    """The 58 bits above the serial, and the partition; raises EpcError."""
    if not (gtin.isascii() and gtin.isdigit() and len(gtin) in (8, 12, 13, 14)):
        raise EpcError(f"GTIN {gtin!r} must be 8, 12, 13 or 14 digits")
    gtin = gtin.zfill(14)
    if check_digit(gtin[:13]) != gtin[13]:
        raise EpcError(f"GTIN {gtin} has check digit {gtin[13]}, expected {check_digit(gtin[:13])}")
    partition = 12 - company_prefix_length
    if partition not in PARTITIONS:
        raise EpcError(f"company prefix length {company_prefix_length} is not in 6..12")
    if not 0 <= filter <= 7:
        raise EpcError(f"filter {filter} is not in 0..7")
    item_bits = PARTITIONS[partition][2]
    prefix = int(gtin[1 : 1 + company_prefix_length])
    item = int(gtin[0] + gtin[1 + company_prefix_length : 13])
    head = (header << 6 | filter << 3 | partition) << 44 | prefix << item_bits | item
    return head, partition


def encode_sgtin96(gtin: str, serial: int | str, company_prefix_length: int, filter: int = 1) -> str:
    """The 24-hex-digit SGTIN-96 EPC for a GTIN and a numeric serial; raises EpcError.

    A serial given as text must be digits without leading zeros, as the standard requires.
    """
    text = str(serial)
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise EpcError(f"SGTIN-96 serial {text!r} must be digits without leading zeros")
    if int(text) >= 1 << SERIAL96_BITS:
        raise EpcError(f"SGTIN-96 serial {text} exceeds {(1 << SERIAL96_BITS) - 1}")
    head, _ = _encode_head(SGTIN96_HEADER, gtin, company_prefix_length, filter)
    return f"{head << SERIAL96_BITS | int(text):024X}"


def encode_sgtin198(gtin: str, serial: str, company_prefix_length: int, filter: int = 1) -> str:
    """The SGTIN-198 EPC (52 hex digits, 208 bits of tag memory) for an alphanumeric serial."""
    if not 1 <= len(serial) <= SERIAL198_CHARS or not CHARSET_82.issuperset(serial):
        raise EpcError(f"SGTIN-198 serial {serial!r} must be 1..20 characters of GS1 set 82")
    head, _ = _encode_head(SGTIN198_HEADER, gtin, company_prefix_length, filter)
    value = head
    for i in range(SERIAL198_CHARS):
        value = value << 7 | (ord(serial[i]) if i < len(serial) else 0)
    return f"{value << 10:052X}"
