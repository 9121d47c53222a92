"""The reader thread against simulated readers on real pseudo-terminals: reads, unplug, replug."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from common.backoff import Backoff
from drivers import Reader, ReaderState, TagRead, m100, mercury
from drivers.errors import ReaderError
from drivers.reader import RateMeter, ReaderThread
from drivers.simulator import Simulator
from tests.conftest import wait_until

EPC_A = "3074257BF7194E4000001A85"


class Collector:
    """A thread-safe on_read callback that remembers every read."""

    def __init__(self) -> None:
        self.reads: list[TagRead] = []
        self._lock = threading.Lock()

    def __call__(self, read: TagRead) -> None:
        with self._lock:
            self.reads.append(read)

    def epcs(self) -> set[str]:
        with self._lock:
            return {read.epc for read in self.reads}


def test_reads_a_noisy_m100_and_sends_poll_and_stop() -> None:
    collector = Collector()
    with Simulator("m100", rate=100, noise=0.2, seed=7) as sim:
        sim.present(EPC_A, rssi=-60)
        sim.start()
        reader = Reader("m100", sim.path, collector, name="cabin-1", keepalive_s=0.1)
        reader.start()
        try:
            assert wait_until(lambda: len(collector.reads) >= 30 and reader.status().bad_frames >= 1)
            assert wait_until(lambda: bytes(sim.received).count(m100.multiple_poll()) >= 2)  # re-sent
            status = reader.status()
            assert status.state is ReaderState.CONNECTED
            assert (status.protocol, status.url, status.name) == ("m100", sim.path, "cabin-1")
            assert status.reconnects == 0 and status.frames_total >= 30 and status.frames_per_s > 0
            assert status.reads_total >= 30
        finally:
            reader.stop()
        sim.stop()
        sim.tick()  # drain what the reader sent last
        assert reader.status().state is ReaderState.STOPPED
        assert bytes(sim.received).startswith(m100.multiple_poll())
        assert bytes(sim.received).endswith(m100.stop_multiple_poll())
    assert collector.epcs() == {EPC_A}
    assert all(-63 <= read.rssi <= -57 for read in collector.reads if read.rssi is not None)


def test_unplugged_reader_is_reopened_and_reads_again(tmp_path: Path) -> None:
    """The URL is a symlink, like /dev/serial/by-id/...: it vanishes on unplug and returns on replug."""
    link = tmp_path / "ttyRFID"
    collector = Collector()
    first = Simulator("rdm6300", rate=50)
    link.symlink_to(first.path)
    first.present("62E3086CED")
    first.start()
    reader = Reader("rdm6300", str(link), collector)
    reader.start()
    try:
        assert wait_until(lambda: "62E3086CED" in collector.epcs())
        first.close()
        link.unlink()
        assert wait_until(lambda: reader.status().state is ReaderState.DISCONNECTED)
        assert "lost" in (reader.status().last_error or "") or "cannot open" in (reader.status().last_error or "")
        with Simulator("rdm6300", rate=50) as second:
            link.symlink_to(second.path)
            second.present("0011223344")
            second.start()
            assert wait_until(lambda: "0011223344" in collector.epcs())
            status = reader.status()
            assert status.state is ReaderState.CONNECTED and status.reconnects == 1
    finally:
        reader.stop()
        first.close()


def retries_and_says_why(reader: ReaderThread, why: str) -> None:
    """A reader that cannot connect keeps retrying, says ``why`` to staff, and stops when asked."""
    reader.start()
    try:
        assert wait_until(lambda: reader.status().state is ReaderState.DISCONNECTED)
        assert why in (reader.status().last_error or "")
    finally:
        reader.stop()
    assert reader.status().state is ReaderState.STOPPED


def test_a_reader_that_cannot_be_opened_retries_and_says_why(tmp_path: Path) -> None:
    retries_and_says_why(Reader("id12", str(tmp_path / "missing"), Collector()), "cannot open")


def test_a_failing_callback_does_not_stop_reading(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[TagRead] = []

    def on_read(read: TagRead) -> None:
        seen.append(read)
        if len(seen) == 1:
            raise RuntimeError("screen went away")

    with Simulator("id12", rate=100) as sim:
        sim.present("62E3086CED")
        sim.start()
        reader = Reader("id12", sim.path, on_read)
        reader.start()
        try:
            assert wait_until(lambda: len(seen) >= 5)
        finally:
            reader.stop()
    assert "on_read failed" in caplog.text


def test_unknown_protocol_is_refused_at_construction() -> None:
    with pytest.raises(ReaderError, match="unknown reader protocol"):
        Reader("wiegand", "loop://", Collector())


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 10.0)
    assert [backoff.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_rate_meter_over_a_sliding_window() -> None:
    meter = RateMeter(window_s=5.0)
    assert meter.rate() == 0.0
    for second in range(11):
        meter.update(100.0 + second, second * 20)
    assert meter.rate() == 20.0
    for second in range(11, 20):
        meter.update(100.0 + second, 200)  # reads stopped
    assert meter.rate() == 0.0


def test_an_unexpected_error_in_the_loop_reconnects_instead_of_killing_the_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = Collector()
    with Simulator("rdm6300", rate=100) as sim:
        sim.present("62E3086CED")
        sim.start()
        reader = Reader("rdm6300", sim.path, collector)
        broken = reader._framer.feed

        def fail_once(data: bytes) -> list[TagRead]:
            reader._framer.feed = broken  # type: ignore[method-assign]
            raise RuntimeError("framer bug")

        reader._framer.feed = fail_once  # type: ignore[method-assign]
        reader.start()
        try:
            assert wait_until(lambda: reader.status().reconnects == 1 and len(collector.reads) >= 3)
            assert "internal error" in caplog.text or "framer bug" in caplog.text
        finally:
            reader.stop()


def test_a_mercury_module_is_started_in_its_region_and_restarted_only_after_silence() -> None:
    collector = Collector()
    start = mercury.start_reading("na")
    with Simulator("mercury", rate=50) as sim:
        reader = Reader("mercury", sim.path, collector, keepalive_s=0.3, start=start)
        reader.start()
        try:
            # no tag, a keep-alive only every 50 ticks: silence longer than keepalive_s, so start is re-sent
            assert wait_until(lambda: (sim.tick(), bytes(sim.received).count(start) >= 2)[1])
            sim.present(EPC_A, rssi=-48, antenna=2)
            sim.start()  # now the module streams reads and keep-alives
            assert wait_until(lambda: len(collector.reads) >= 20)
            sent = bytes(sim.received).count(start)
            assert wait_until(lambda: len(collector.reads) >= 60)
            assert bytes(sim.received).count(start) == sent  # streaming: no restart
        finally:
            reader.stop()
        sim.stop()
        sim.tick()
        assert bytes(sim.received).endswith(mercury.stop_reading())
    assert {(r.epc, r.rssi is not None and -51 <= r.rssi <= -45, r.antenna) for r in collector.reads} == {
        (EPC_A, True, 2)
    }
