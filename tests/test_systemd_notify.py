"""The sd_notify client talks to a real datagram socket, as systemd provides."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from common import systemd


def test_ready_and_watchdog_reach_the_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "10000000")
        assert systemd.ready("serving on :8080")
        assert server.recv(100) == b"READY=1\nSTATUS=serving on :8080"
        assert systemd.watchdog()
        assert server.recv(100) == b"WATCHDOG=1"
        assert systemd.watchdog_interval_s() == 5.0


def test_without_systemd_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.ready() is False
    assert systemd.watchdog_interval_s() is None
