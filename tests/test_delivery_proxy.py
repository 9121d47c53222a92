"""The fault proxy of tests/faults.py does what the network-drop proof relies on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.faults import TcpProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback server that sends back whatever each connection sends it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    done = threading.Event()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    done.set()
    thread.join(5)
    server.close()


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            received += conn.recv(65536)
        return received


def test_forwards_both_ways_then_cut_drops_and_refuses_until_restored(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        big = bytes(range(256)) * 4096  # 1 MiB: more than one read in each direction
        assert roundtrip(proxy.port, big) == big
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        with held:
            held.sendall(b"ping")
            assert held.recv(4) == b"ping"
            proxy.cut()
            assert held.recv(1) == b""  # the open connection is closed under the client
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
        accepted = proxy.accepted
        proxy.restore()
        assert roundtrip(proxy.port, b"back") == b"back"
        assert proxy.accepted == accepted + 1
