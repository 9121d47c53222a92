"""Fixed network readers (Impinj Speedway/R700, Zebra FX) over LLRP, through the sllurp client.

sllurp speaks the protocol (capabilities, ROSpec, reports, keep-alives) in its own thread; this
adapter gives it the face every reader has (:class:`drivers.reader.ReaderThread`, which the serial
``Reader`` shares): ``start``/``stop``/``status``, one :class:`TagRead` per tag report entry with
its antenna and peak RSSI, and a reconnect with capped exponential backoff when the reader is
unreachable or drops the connection. sllurp's types
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
from drivers.reader import BACKOFF_INITIAL_S, BACKOFF_MAX_S, ReaderState, ReaderThread
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


class LlrpReader(ReaderThread):
    """One LLRP reader at ``HOST[:PORT]``; ``on_read`` runs in sllurp's thread for every tag read."""

    label = "LLRP reader"
    thread_prefix = "llrp"

    def __init__(self, url: str, on_read: Callable[[TagRead], None], *, name: str = "reader") -> None:
        self.host, self.port = address(url)
        super().__init__(url, on_read, name)
        self._reports = 0
        self._reads = 0
        self._last_error: str | None = None
        self._dropped = threading.Event()  # the connection ended, or stop() was called

    def _counters(self) -> tuple[str, int, int, int, str | None]:
        # bad frames: none here, sllurp drops what it cannot decode and logs it
        return "llrp", self._reports, 0, self._reads, self._last_error

    def _note_error(self, error: str) -> None:
        self._last_error = error

    def _wake(self) -> None:
        self._dropped.set()  # stop inventory politely (sllurp deletes its ROSpec) and disconnect

    def _run(self) -> None:
        backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        while not self._stopping.is_set():
            self._set_state(ReaderState.CONNECTING)
            self._dropped.clear()
            client = self._client()
            try:
                with warnings.catch_warnings():
                    # sllurp 3.0.5 drops (never closes) its socket when connect() fails; that
                    # socket's ResourceWarning is sllurp's, reported upstream, not a leak of ours
                    warnings.filterwarnings("ignore", "unclosed <socket", ResourceWarning)
                    client.connect()
            except (OSError, sllurp.ReaderConfigurationError) as error:
                self._lost(f"cannot connect to {self.host}:{self.port}: {error}", backoff)
                continue
            self._connected()
            self._dropped.wait()
            if self._stopping.is_set():
                client.disconnect(timeout=STOP_TIMEOUT_S)
                client.hard_disconnect()
                break
            client.hard_disconnect()
            self._lost(f"lost {self.host}:{self.port}", backoff)
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
        client.add_disconnected_callback(lambda _client: self._dropped.set())
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
        self._deliver(reads)
