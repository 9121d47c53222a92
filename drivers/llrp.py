"""Fixed network readers (Impinj Speedway/R700, Zebra FX) over LLRP, through the sllurp client.

sllurp speaks the protocol (capabilities, ROSpec, reports, keep-alives) in its own thread; this
adapter gives it the serial :class:`drivers.reader.Reader`'s face: ``start``/``stop``/``status``,
one :class:`TagRead` per tag report entry with its antenna and peak RSSI, and a reconnect with
capped exponential backoff when the reader is unreachable or drops the connection. sllurp's types
stay in this module. Each report entry is one read (the ROSpec asks for a report per tag seen).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from sllurp import llrp as sllurp

from common.backoff import Backoff
from drivers.errors import ReaderError
from drivers.reader import BACKOFF_INITIAL_S, BACKOFF_MAX_S, RateMeter, ReaderState, ReaderStatus
from drivers.types import TagRead

log = logging.getLogger(__name__)

DEFAULT_PORT = sllurp.LLRP_DEFAULT_PORT  # 5084
CONNECT_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 3.0
ALL_ANTENNAS = 0  # LLRP's antenna id for "every antenna of the reader"


def address(url: str) -> tuple[str, int]:
    """(host, port) of ``HOST[:PORT]`` or ``llrp://HOST[:PORT]``; raises ReaderError."""
    rest = url.removeprefix("llrp://").rstrip("/")
    host, sep, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    if not sep:
        host, port = rest, str(DEFAULT_PORT)
    if not host or ":" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ReaderError(f"LLRP reader address {url!r} is not HOST[:PORT]")
    return host, int(port)


def tag_read(entry: Mapping[str, Any]) -> TagRead | None:
    """Our read of one TagReportData entry as sllurp decodes it; None for an entry without EPC."""
    epc = entry.get("EPC") or entry.get("EPC-96")
    if not epc:
        return None
    text = epc.decode("ascii") if isinstance(epc, bytes) else str(epc)
    rssi, antenna = entry.get("PeakRSSI"), entry.get("AntennaID")
    return TagRead(text.upper(), None if rssi is None else int(rssi), None if antenna is None else int(antenna))


class LlrpReader:
    """One LLRP reader at ``HOST[:PORT]``; ``on_read`` runs in sllurp's thread for every tag read."""

    def __init__(self, url: str, on_read: Callable[[TagRead], None], *, name: str = "reader") -> None:
        self.url = url
        self.host, self.port = address(url)
        self.name = name
        self._on_read = on_read
        self._lock = threading.Lock()
        self._state = ReaderState.STOPPED
        self._reports = 0
        self._reads = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self._meter = RateMeter()
        self._stopping = threading.Event()
        self._lost = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Connect and inventory in the background."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._set_state(ReaderState.CONNECTING)
        self._thread = threading.Thread(target=self._run, name=f"llrp-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop inventory politely (sllurp deletes its ROSpec), disconnect, and wait for the thread."""
        self._stopping.set()
        self._lost.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._set_state(ReaderState.STOPPED)

    def status(self) -> ReaderStatus:
        with self._lock:
            return ReaderStatus(
                protocol="llrp",
                url=self.url,
                state=self._state,
                frames_total=self._reports,
                frames_per_s=round(self._meter.rate(), 1),
                bad_frames=0,  # sllurp drops what it cannot decode and logs it
                reconnects=self._reconnects,
                last_error=self._last_error,
                name=self.name,
                reads_total=self._reads,
            )

    def _set_state(self, state: ReaderState, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._last_error = error

    def _run(self) -> None:
        backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        connected_before = False
        while not self._stopping.is_set():
            self._set_state(ReaderState.CONNECTING)
            self._lost.clear()
            client = self._client()
            try:
                with warnings.catch_warnings():
                    # sllurp 3.0.5 drops (never closes) its socket when connect() fails; that
                    # socket's ResourceWarning is sllurp's, reported upstream, not a leak of ours
                    warnings.filterwarnings("ignore", "unclosed <socket", ResourceWarning)
                    client.connect()
            except (OSError, sllurp.ReaderConfigurationError) as error:
                self._disconnected(f"cannot connect to {self.host}:{self.port}: {error}", backoff)
                continue
            if connected_before:
                with self._lock:
                    self._reconnects += 1
            connected_before = True
            self._lost.wait()
            if self._stopping.is_set():
                client.disconnect(timeout=STOP_TIMEOUT_S)
                client.hard_disconnect()
                break
            client.hard_disconnect()
            self._disconnected(f"lost {self.host}:{self.port}", backoff)
            if self._reads:
                backoff.reset()

    def _client(self) -> sllurp.LLRPReaderClient:
        config = sllurp.LLRPReaderConfig(
            {
                "antennas": [ALL_ANTENNAS],
                "tx_power": {ALL_ANTENNAS: 0},  # index 0: the reader's maximum
                "report_every_n_tags": 1,
                "start_inventory": True,
                "reset_on_connect": True,
                "reconnect": False,  # the loop above reconnects, with backoff, and counts it
                "tag_content_selector": {
                    "EnableROSpecID": False,
                    "EnableSpecIndex": False,
                    "EnableInventoryParameterSpecID": False,
                    "EnableAntennaID": True,
                    "EnableChannelIndex": False,
                    "EnablePeakRSSI": True,
                    "EnableFirstSeenTimestamp": True,
                    "EnableLastSeenTimestamp": False,
                    "EnableTagSeenCount": True,
                    "EnableAccessSpecID": False,
                },
            }
        )
        client = sllurp.LLRPReaderClient(self.host, self.port, config, timeout=CONNECT_TIMEOUT_S)
        client.add_tag_report_callback(self._on_report)
        client.add_state_callback(sllurp.LLRPReaderState.STATE_INVENTORYING, self._on_inventorying)
        client.add_disconnected_callback(lambda _client: self._lost.set())
        return client

    def _on_inventorying(self, _client: object, _state: int) -> None:
        log.info("LLRP reader %s at %s:%s inventorying", self.name, self.host, self.port)
        self._set_state(ReaderState.CONNECTED)

    def _on_report(self, _client: object, entries: list[Mapping[str, Any]]) -> None:
        reads = [read for read in map(tag_read, entries) if read is not None]
        with self._lock:
            self._reports += 1
            self._reads += len(reads)
            self._meter.update(time.monotonic(), self._reports)
        for read in reads:
            try:
                self._on_read(read)
            except Exception:
                log.exception("LLRP reader %s: on_read failed for %s", self.name, read.epc)

    def _disconnected(self, message: str, backoff: Backoff) -> None:
        log.warning("LLRP reader %s: %s", self.name, message)
        self._set_state(ReaderState.DISCONNECTED, message)
        self._stopping.wait(backoff.next())
