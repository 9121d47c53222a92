"""The edge and HQ web servers under what an attacker on the store network sends (issue 13), tried
from outside against the real ``touchpoint edge`` and ``touchpoint hq --role web`` processes:
hundreds of open event streams, slow partial headers, a 20 MB header, a 50 MB body."""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from touchpoint.services import free_port, wait_for_port

TOUCHPOINT = str(Path(sys.executable).parent / "touchpoint")
LIMITS = "threads = 16\nmax_streams = 8\nheader_timeout_s = 3.0\nbody_timeout_s = 3.0\nconnection_limit = 1000\n"


def edge_toml(tmp_path: Path, port: int) -> str:
    return (
        f'[device]\nstore_id = "s1"\ndevice_id = "mirror-1"\n[web]\nlisten = "127.0.0.1:{port}"\n{LIMITS}'
        f'[outbox]\npath = "{tmp_path / "edge.db"}"\n[log]\nformat = "text"\n'
    )


def hq_toml(tmp_path: Path, port: int) -> str:
    return (
        f'[web]\nlisten = "127.0.0.1:{port}"\n{LIMITS}[database]\nurl = "sqlite:///{tmp_path / "hq.db"}"\n'
        f'[hq]\nrecompute_interval_s = 0\n[hq.tokens]\nweb = "web-token-0123456789"\n[log]\nformat = "text"\n'
    )


@contextlib.contextmanager
def running(tmp_path: Path, kind: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    config = tmp_path / f"{kind}.toml"
    config.write_text(edge_toml(tmp_path, port) if kind == "edge" else hq_toml(tmp_path, port), encoding="utf-8")
    command = [TOUCHPOINT, kind, "--config", str(config)] + (["--role", "web"] if kind == "hq" else [])
    log = (tmp_path / f"{kind}.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=60)
        yield port, process
    finally:
        process.terminate()
        assert process.wait(30) == 0, (tmp_path / f"{kind}.log").read_text()
        log.close()


def get(port: int, path: str, timeout: float = 5.0) -> int:
    """The status of one GET on a new connection; raises on a timeout."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def rss_kib(process: subprocess.Popen[bytes]) -> int:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def answer_to(sock: socket.socket) -> bytes:
    """What the server answered before it closed, however the client's sending went."""
    sock.settimeout(10)
    data = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closed the connection (without answering) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send until done or until the server shut the connection (it answers first)."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for start in range(0, len(data), 1 << 20):
            sock.sendall(data[start : start + (1 << 20)])


def test_two_hundred_open_streams_leave_the_api_answering(tmp_path: Path) -> None:
    with running(tmp_path, "edge") as (port, _):
        streams = []
        try:
            for _ in range(200):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(b"GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                streams.append(sock)
            heads = [sock.recv(200).split(b"\r\n", 1)[0] for sock in streams]
            assert heads.count(b"HTTP/1.1 200 OK") == 8, set(heads)  # [web] max_streams
            assert heads.count(b"HTTP/1.1 503 SERVICE UNAVAILABLE") == 192, set(heads)
            started = time.monotonic()
            assert [get(port, "/api/status") for _ in range(20)] == [200] * 20
            assert get(port, "/") == 200 and time.monotonic() - started < 10
        finally:
            for sock in streams:
                sock.close()


@pytest.mark.parametrize("kind", ["edge", "hq"])
def test_slow_partial_headers_leave_healthz_answering_and_are_closed(tmp_path: Path, kind: str) -> None:
    with running(tmp_path, kind) as (port, _):
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        try:
            for sock in slow:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            for _ in range(3):  # a byte a second: never idle, never done
                assert get(port, "/healthz") == 200
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"a")
                time.sleep(1)
            assert all(closed_within(sock, 5.0) for sock in slow)  # header_timeout_s (3 s) from the first byte
        finally:
            for sock in slow:
                sock.close()


@pytest.mark.parametrize("kind", ["edge", "hq"])
def test_a_20_mb_header_is_431_and_a_50_mb_body_is_413_without_memory(tmp_path: Path, kind: str) -> None:
    with running(tmp_path, kind) as (port, process):
        assert get(port, "/healthz") == 200
        before = rss_kib(process)
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (20 << 20) + b"\r\n\r\n")
                assert answer_to(sock).split(b"\r\n")[0].endswith(b" 431 Request Header Fields Too Large")
        path = b"/api/session/touch" if kind == "edge" else b"/v1/events"
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                send_all(sock, head + b"Content-Length: %d\r\n\r\n" % (50 << 20) + b"[" * (50 << 20))
                assert b" 413 " in answer_to(sock).split(b"\r\n")[0]
        with socket.create_connection(("127.0.0.1", port)) as sock:  # chunked, so no length to refuse up front
            head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            send_all(sock, head + (b"100000\r\n" + b"[" * 0x100000 + b"\r\n") * 50 + b"0\r\n\r\n")
            assert b" 413 " in answer_to(sock).split(b"\r\n")[0]
        assert rss_kib(process) - before < 30 * 1024, "a refused header or body must not stay in memory"
        assert get(port, "/healthz") == 200


def test_route_limits_and_the_request_line(tmp_path: Path) -> None:
    with running(tmp_path, "edge") as (port, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/api/session/touch", body=b"{" + b" " * 70_000 + b"}")
        answer = conn.getresponse()
        assert answer.status == 413 and b"65536" in answer.read()  # [web] max_form_bytes
        conn.close()
        assert get(port, "/api/products?q=" + "a" * 9000) == 414  # [web] max_request_line_bytes
