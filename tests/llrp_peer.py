"""A TCP peer that plays an LLRP reader for sllurp: real captured messages, and reports for our tags.

It answers each client message the way a reader does (capabilities, config, ROSpec steps, each
with a success LLRPStatus), then, once the ROSpec is enabled, replays captured RO_ACCESS_REPORT bytes
and/or sends a report for every tag "in the field" ``rate`` times a second. Only the few messages
a reader sends are encoded here (LLRP 1.0.1 TLV and TV parameters); parsing is sllurp's job.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

DATA = Path(__file__).parent / "data" / "llrp"

# Message types (LLRP 1.0.1 section 16)
GET_READER_CAPABILITIES, GET_READER_CONFIG, SET_READER_CONFIG = 1, 2, 3
CLOSE_CONNECTION, CLOSE_CONNECTION_RESPONSE = 14, 4
RESPONSES = {1: 11, 3: 13, 20: 30, 21: 31, 22: 32, 23: 33, 24: 34, 25: 35, 41: 51, 40: 50, 42: 52, 43: 53}
START_ROSPEC, ENABLE_ROSPEC = 22, 24  # sllurp's ROSpec starts immediately when enabled
RO_ACCESS_REPORT = 61


def captured(name: str) -> bytes:
    return bytes.fromhex("".join((DATA / name).read_text().split()))


def message(kind: int, message_id: int, body: bytes) -> bytes:
    """Version 1, the type, the length of it all, the id."""
    return struct.pack("!HII", 1 << 10 | kind, 10 + len(body), message_id) + body


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, 4 + len(value)) + value


def tv(kind: int, value: bytes) -> bytes:
    return bytes((0x80 | kind,)) + value


SUCCESS = tlv(287, struct.pack("!HH", 0, 0))  # LLRPStatus: M_Success, no description


def capabilities(antennas: int) -> bytes:
    """GeneralDeviceCapabilities, RegulatoryCapabilities with a power table and one RF mode."""
    firmware = b"peer-1.0"
    general = tlv(137, struct.pack("!HHIIH", antennas, 0x4000, 25882, 2001, len(firmware)) + firmware)
    powers = b"".join(tlv(145, struct.pack("!Hh", index, 1000 + 100 * index)) for index in range(1, 21))
    mode = tlv(329, struct.pack("!IBBBBIIIII", 1000, 0x80, 1, 0, 2, 640000, 1500, 6250, 6250, 0))
    band = tlv(144, powers + tlv(328, mode))
    regulatory = tlv(143, struct.pack("!HH", 276, 2) + band)
    return SUCCESS + general + regulatory


def report(message_id: int, epc: str, rssi: int, antenna: int, seen_us: int) -> bytes:
    """One RO_ACCESS_REPORT with one TagReportData, laid out as the captured reports are."""
    raw = bytes.fromhex(epc)
    code = tv(13, raw) if len(raw) == 12 else tlv(241, struct.pack("!H", 8 * len(raw)) + raw)
    fields = tv(1, struct.pack("!H", antenna)) + tv(6, struct.pack("!b", rssi)) + tv(2, struct.pack("!Q", seen_us))
    return message(RO_ACCESS_REPORT, message_id, tlv(240, code + fields + tv(8, struct.pack("!H", 1))))


class LlrpPeer:
    """An LLRP "reader" on 127.0.0.1 (``port``), one client at a time; close it to take it away."""

    def __init__(self, rate: float = 20.0, antennas: int = 4, replay: bytes = b"") -> None:
        self.rate = rate
        self.antennas = antennas
        self.replay = replay  # sent once, right after inventory starts
        self.received: list[int] = []  # message types the client sent
        self.connections = 0
        self._field: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._drop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True, name="llrp-peer")
        self._thread.start()

    def present(self, epc: str, rssi: int = -50, antenna: int = 1) -> None:
        with self._lock:
            self._field[epc.upper(), antenna] = rssi

    def remove(self, epc: str) -> None:
        with self._lock:
            for key in [key for key in self._field if key[0] == epc.upper()]:
                del self._field[key]

    def drop_client(self) -> None:
        """Cut the current connection, as a reader that rebooted would."""
        self._drop.set()

    def close(self) -> None:
        self._closing.set()
        self._server.close()
        self._thread.join(5)

    def __enter__(self) -> LlrpPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            self._drop.clear()
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(1 / self.rate)
        conn.sendall(captured("reader_event_notification.hex"))
        buffer, inventorying, sent = b"", False, 0x5000
        while not self._closing.is_set() and not self._drop.is_set():
            try:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buffer += chunk
            except TimeoutError:
                pass
            except OSError:
                return
            while len(buffer) >= 10:
                kind_word, length, message_id = struct.unpack("!HII", buffer[:10])
                if len(buffer) < length:
                    break
                kind, buffer = kind_word & 0x3FF, buffer[length:]
                self.received.append(kind)
                answer = self._answer(kind, message_id)
                if answer:
                    conn.sendall(answer)
                if kind == CLOSE_CONNECTION:
                    return
                if kind in (START_ROSPEC, ENABLE_ROSPEC) and not inventorying:
                    inventorying = True
                    if self.replay:
                        conn.sendall(self.replay)
            if inventorying:
                with self._lock:
                    field = dict(self._field)
                for (epc, antenna), rssi in field.items():
                    sent += 1
                    conn.sendall(report(sent, epc, rssi, antenna, 1_700_000_000_000_000 + sent))

    def _answer(self, kind: int, message_id: int) -> bytes:
        if kind == GET_READER_CAPABILITIES:
            return message(11, message_id, capabilities(self.antennas))
        if kind == GET_READER_CONFIG:
            return captured("get_reader_config_response.hex")
        if kind == CLOSE_CONNECTION:
            return message(CLOSE_CONNECTION_RESPONSE, message_id, SUCCESS)
        if kind in RESPONSES:
            return message(RESPONSES[kind], message_id, SUCCESS)
        return b""  # KEEPALIVE_ACK, ENABLE_EVENTS_AND_REPORTS: no answer
