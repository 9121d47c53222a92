"""EPC decoding and encoding against published GS1 vectors, plus round trips over all partitions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.epc import (
    CHARSET_82,
    PARTITIONS,
    Sgtin,
    check_digit,
    decode_epc,
    encode_sgtin96,
    encode_sgtin198,
    gtin_for_epc,
)
from drivers.errors import EpcError

# (hex, tag URI, GTIN-14, where the vector comes from)
VECTORS = [
    # GS1 EPC Tag Data Standard, worked example (also docs/architecture.md).
    ("3074257BF7194E4000001A85", "urn:epc:tag:sgtin-96:3.0614141.812345.6789", "80614141123458", "TDS example"),
    # GS1 TDS 2.3 annex E.3, as quoted in a GS1 resolver's test_epc_binary.py; partition 1.
    ("3066C4409047E140075BCD15", "urn:epc:tag:sgtin-96:3.95060001343.05.123456789", "09506000134352", "TDS 2.3 E.3"),
    (
        "3666C4409047E159B2C2BF100000000000000000000000000000",
        "urn:epc:tag:sgtin-198:3.95060001343.05.32a%2Fb",
        "09506000134352",
        "TDS 2.3 E.3, SGTIN-198 with '/' escaped",
    ),
    # GS1 EPC binary compression standard 1.0.0 section 4.2 worked example; filter 0.
    ("30164596F40C0E5CBE991A83", "urn:epc:tag:sgtin-96:0.9528765.012345.123456789123", "09528765123457", "EPCB 4.2"),
    # fulfilio/pyepc tests/test_sgtin.py: filter 1, SGTIN-198 in 200 bits, alphanumeric serial.
    ("3034257BF7194E4000001A85", "urn:epc:tag:sgtin-96:1.0614141.812345.6789", "80614141123458", "pyepc"),
    (
        "3634257BF7194E5B3770E40000000000000000000000000000",
        "urn:epc:tag:sgtin-198:1.0614141.812345.6789",
        "80614141123458",
        "pyepc",
    ),
    (
        "3634257BF7194E5B3770E60C20000000000000000000000000",
        "urn:epc:tag:sgtin-198:1.0614141.812345.6789AB",
        "80614141123458",
        "pyepc",
    ),
    ("3036142C8C008F8000053244", "urn:epc:tag:sgtin-96:1.8719139.000574.340548", "08719139005740", "pyepc"),
    # epcGS1coder Sgtin96Test.java: partition 5, company prefix 8000, item reference 1137, serial 11.
    ("3034007D00011C400000000B", "urn:epc:tag:sgtin-96:1.0008000.001137.11", "00008000011378", "epcGS1coder"),
    # Rust gs1 crate tests: partition 6, urn:epc:id:sgtin:360843.0951968.7025652, (01) 03608439519680.
    ("30396062C3A1A800006B33F4", "urn:epc:tag:sgtin-96:1.360843.0951968.7025652", "03608439519680", "rust gs1"),
]


@pytest.mark.parametrize("epc, uri, gtin, origin", VECTORS, ids=[v[3] + ":" + v[0][:8] for v in VECTORS])
def test_published_vectors_decode(epc: str, uri: str, gtin: str, origin: str) -> None:
    sgtin = decode_epc(epc)
    assert sgtin is not None
    assert (sgtin.uri, sgtin.gtin) == (uri, gtin)
    assert decode_epc(epc.lower()) == sgtin
    assert gtin_for_epc(epc) == gtin


def test_tds_example_fields_keep_the_filter() -> None:
    assert decode_epc("3074257BF7194E4000001A85") == Sgtin("sgtin-96", 3, 5, "0614141", "812345", "6789")
    assert decode_epc("3074257BF7194E4000001A85").pure_identity_uri == "urn:epc:id:sgtin:0614141.812345.6789"


@pytest.mark.parametrize("epc, uri, gtin, origin", [v for v in VECTORS if ":sgtin-96:" in v[1]])
def test_published_sgtin96_vectors_encode(epc: str, uri: str, gtin: str, origin: str) -> None:
    filter_value, prefix, _, serial = uri.rsplit(":", 1)[1].split(".")
    assert encode_sgtin96(gtin, int(serial), len(prefix), int(filter_value)) == epc


def test_sgtin198_vector_encodes() -> None:
    assert encode_sgtin198("09506000134352", "32a/b", 11, 3) == VECTORS[2][0]


def _reference_sgtin96(filter_value: int, partition: int, prefix: int, item: int, serial: int) -> str:
    """An independent bit-string construction straight from the TDS table, to check partitions 0-4."""
    prefix_bits, _, item_bits = PARTITIONS[partition]
    bits = f"{0x30:08b}{filter_value:03b}{partition:03b}{prefix:0{prefix_bits}b}{item:0{item_bits}b}{serial:038b}"
    return f"{int(bits, 2):024X}"


@pytest.mark.parametrize(
    "gtin, prefix_length, serial",
    [
        ("00614141123452", 12, 1),  # partition 0: 12-digit prefix, 1-digit item reference (indicator only)
        ("10614141123459", 11, 2**38 - 1),  # partition 1, largest serial
        ("20614141123456", 10, 0),  # partition 2
        ("30614141123453", 9, 42),  # partition 3
        ("40614141123450", 8, 7),  # partition 4
    ],
)
def test_low_partitions_against_reference_bits(gtin: str, prefix_length: int, serial: int) -> None:
    partition = 12 - prefix_length
    prefix = int(gtin[1 : 1 + prefix_length])
    item = int(gtin[0] + gtin[1 + prefix_length : 13])
    epc = encode_sgtin96(gtin, serial, prefix_length, filter=2)
    assert epc == _reference_sgtin96(2, partition, prefix, item, serial)
    sgtin = decode_epc(epc)
    assert sgtin is not None and sgtin.partition == partition and sgtin.gtin == gtin
    assert sgtin.company_prefix == gtin[1 : 1 + prefix_length] and sgtin.serial == str(serial)


def test_check_digit() -> None:
    assert check_digit("8061414112345") == "8"
    assert check_digit("0401234501000") == "8"


@st.composite
def gtins(draw: st.DrawFn) -> str:
    body = draw(st.text("0123456789", min_size=13, max_size=13))
    return body + check_digit(body)


@given(gtins(), st.integers(6, 12), st.integers(0, 2**38 - 1), st.integers(0, 7))
def test_sgtin96_round_trip_all_partitions(gtin: str, prefix_length: int, serial: int, filter_value: int) -> None:
    sgtin = decode_epc(encode_sgtin96(gtin, serial, prefix_length, filter_value))
    assert sgtin is not None
    assert (sgtin.gtin, sgtin.serial, sgtin.filter, sgtin.partition) == (
        gtin,
        str(serial),
        filter_value,
        12 - prefix_length,
    )


@given(gtins(), st.integers(6, 12), st.text(sorted(CHARSET_82), min_size=1, max_size=20), st.integers(0, 7))
def test_sgtin198_round_trip(gtin: str, prefix_length: int, serial: str, filter_value: int) -> None:
    epc = encode_sgtin198(gtin, serial, prefix_length, filter_value)
    sgtin = decode_epc(epc)
    assert len(epc) == 52 and sgtin is not None
    assert (sgtin.scheme, sgtin.gtin, sgtin.serial, sgtin.filter) == ("sgtin-198", gtin, serial, filter_value)


@given(st.text(max_size=60))
def test_decode_never_raises(text: str) -> None:
    result = decode_epc(text)
    assert result is None or isinstance(result, Sgtin)


@pytest.mark.parametrize(
    "epc",
    [
        "E2801160600002084F6C4A51",  # a TID-style non-GS1 EPC
        "3500E86F8000A9E000000586",  # GID-96 (TDS E.3): not an SGTIN
        "307C257BF7194E4000001A85",  # SGTIN-96 with partition 7 (reserved)
        "3074257BF7194E40",  # SGTIN header, cut short
        "3634257BF7194E5B3770E4000000000000000000000000000000000000"[:48],  # SGTIN-198 too short
        "3634257BF7194E0000000000000000000000000000000000000000",  # SGTIN-198 with an empty serial
        "not hex at all",
        "",
    ],
)
def test_other_epcs_are_not_sgtin(epc: str) -> None:
    assert decode_epc(epc) is None
    assert gtin_for_epc(epc) is None


@pytest.mark.parametrize("prefix, item", [(0xFFFFFF, 1), (614141, 1_000_000)])
def test_fields_with_too_many_digits_are_not_sgtin(prefix: int, item: int) -> None:
    # Partition 5 allows 7 prefix digits and 6 item reference digits; 24 and 20 bits hold more.
    assert decode_epc(_reference_sgtin96(3, 5, prefix, item, 1)) is None


@pytest.mark.parametrize(
    "args, message",
    [
        (("80614141123457", 1, 7), "check digit"),
        (("8061414112345", 1, 7), "check digit"),
        (("806141411234", 1, 7), "check digit"),
        (("8061414112345X", 1, 7), "digits"),
        (("80614141123458", 1, 5), "company prefix length"),
        (("80614141123458", 2**38, 7), "exceeds"),
        (("80614141123458", "007", 7), "leading zeros"),
        (("80614141123458", -1, 7), "digits"),
    ],
)
def test_encode_rejects_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(EpcError, match=message):
        encode_sgtin96(*args)
    with pytest.raises(ValueError):  # EpcError is also a ValueError
        encode_sgtin96(*args)


def test_encode_rejects_bad_filter_and_198_serial() -> None:
    with pytest.raises(EpcError, match="filter"):
        encode_sgtin96("80614141123458", 1, 7, filter=8)
    with pytest.raises(EpcError, match="set 82"):
        encode_sgtin198("80614141123458", "ä", 7)
    with pytest.raises(EpcError, match="set 82"):
        encode_sgtin198("80614141123458", "x" * 21, 7)


def test_short_gtins_are_padded() -> None:
    epc = encode_sgtin96("4012345010008", 5, 7)  # a GTIN-13 (EAN-13)
    assert gtin_for_epc(epc) == "04012345010008"


@pytest.mark.parametrize(
    "value", [None, 3074257, b"3074257BF7194E4000001A85", "0x3074257BF7194E4000001A85", "30_74", " 3074", "+3074", ""]
)
def test_anything_but_hex_text_decodes_to_none(value: object) -> None:
    assert decode_epc(value) is None and gtin_for_epc(value) is None
