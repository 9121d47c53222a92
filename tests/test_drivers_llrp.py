"""The LLRP adapter (sllurp) against a real TCP peer that plays a fixed reader: the handshake, real
captured RO_ACCESS_REPORT messages, antenna and RSSI per read, polite stop, reconnect."""

from __future__ import annotations

import pytest

from drivers import TagRead
from drivers.errors import ReaderError
from drivers.llrp import DEFAULT_PORT, LlrpReader, address, tag_read
from drivers.reader import ReaderState
from drivers.readers import open_reader
from tests.conftest import wait_until
from tests.llrp_peer import LlrpPeer, captured, report
from tests.test_drivers_reader import Collector, retries_and_says_why
from touchpoint.services import free_port

EPC = "3074257BF7194E4000001A85"


def test_our_report_encoding_is_the_captured_one() -> None:
    """The peer's reports for our tags are laid out byte for byte as a real reader's are."""
    first = captured("ro_access_reports.hex")[:44]
    assert report(0x4095892F, "3005FB63AC1F3841EC880467", -50, 1, 1385585041558537) == first


def test_captured_reports_become_reads_with_antenna_and_rssi() -> None:
    collector = Collector()
    with LlrpPeer(replay=captured("ro_access_reports.hex")) as peer:
        reader = LlrpReader(f"127.0.0.1:{peer.port}", collector, name="cabin-1")
        reader.start()
        try:
            assert wait_until(lambda: len(collector.reads) >= 45, timeout=10), (len(collector.reads), peer.received)
            status = reader.status()
            assert (status.state, status.protocol, status.reads_total, status.frames_total) == (
                ReaderState.CONNECTED,
                "llrp",
                45,
                45,
            )
        finally:
            reader.stop()
        assert wait_until(lambda: peer.received[-2:] == [41, 21])  # stopped politely: no AccessSpec, no ROSpec
    # capabilities, config, events and reports on, config set, clean slate, ROSpec added and enabled
    assert peer.received[:8] == [1, 2, 64, 3, 41, 21, 20, 24]
    assert collector.reads[:2] == [
        TagRead("3005FB63AC1F3841EC880467", -50, 1),
        TagRead("300833B2DDD906C000000000", -58, 1),
    ]
    assert collector.epcs() == {
        "3005FB63AC1F3841EC880467",
        "300833B2DDD906C000000000",
        "1FB41F712AC9C37AB79D618173188324001A",  # an EPCData of 144 bits, not an EPC-96
    }
    assert {read.antenna for read in collector.reads} == {1}
    assert {read.rssi for read in collector.reads} == {-61, -60, -58, -57, -50, -49, -17}  # as sllurp decodes them


def test_tags_in_the_field_are_read_on_their_ports_and_a_dropped_connection_comes_back() -> None:
    collector = Collector()
    with LlrpPeer(rate=50) as peer:
        peer.present(EPC, rssi=-45, antenna=2)
        reader = open_reader("llrp", f"llrp://127.0.0.1:{peer.port}", collector, name="cabins")
        reader.start()
        try:
            assert wait_until(lambda: len(collector.reads) >= 10)
            peer.drop_client()
            assert wait_until(lambda: peer.connections == 2 and reader.status().reconnects == 1)
            seen = len(collector.reads)
            assert wait_until(lambda: len(collector.reads) >= seen + 10)  # reading again
            assert reader.status().state is ReaderState.CONNECTED
        finally:
            reader.stop()
    assert set(collector.reads) == {TagRead(EPC, -45, 2)}


def test_an_unreachable_reader_is_retried_and_says_why() -> None:
    retries_and_says_why(LlrpReader(f"127.0.0.1:{free_port()}", Collector()), "cannot connect")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("192.0.2.10", ("192.0.2.10", DEFAULT_PORT)),
        ("reader-3.local:5085", ("reader-3.local", 5085)),
        ("llrp://192.0.2.10:14150/", ("192.0.2.10", 14150)),
    ],
)
def test_addresses(url: str, expected: tuple[str, int]) -> None:
    assert address(url) == expected


@pytest.mark.parametrize("url", ["", "llrp://", "host:port", "host:0", "host:70000", "a:b:c"])
def test_bad_addresses_are_refused(url: str) -> None:
    with pytest.raises(ReaderError, match="not HOST"):
        address(url)


def test_report_entries_without_epc_are_no_reads() -> None:
    assert tag_read({"AntennaID": 1, "PeakRSSI": -40}) is None
    assert tag_read({"EPC": b"e2801160", "AntennaID": 3}) == TagRead("E2801160", None, 3)
