"""``touchpoint demo`` as a newcomer runs it: the whole system starts, syncs, continues and stops cleanly."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from touchpoint.demo.configs import PortError, Ports, check_free
from touchpoint.demo.shoppers import CUSTOMERS
from touchpoint.services import free_port

DEVICES = ("mirror-01", "kiosk-01")
RUNNING = "Ctrl-C stops everything."


def get_json(url: str | urllib.request.Request) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def free_ports() -> int:
    """A first port whose three successors are free too."""
    while True:
        first = free_port()
        with contextlib.suppress(PortError):
            check_free(Ports.starting_at(first))
            return first


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


class Demo:
    """A ``touchpoint demo`` subprocess, read up to its URL block."""

    def __init__(self, workdir: Path, port: int, *options: str) -> None:
        command = [
            str(Path(sys.executable).parent / "touchpoint"),
            "demo",
            "--workdir",
            str(workdir),
            "--port",
            str(port),
            *options,
        ]
        self.port = port
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        assert self.process.stdout is not None
        while RUNNING not in "".join(self.lines):
            line = self.process.stdout.readline()
            assert line, "demo exited early:\n" + "".join(self.lines)
            self.lines.append(line)
        self.hq = f"http://127.0.0.1:{port + 2}/"
        self.mirror = f"http://127.0.0.1:{port}/"

    @property
    def printed(self) -> str:
        return "".join(self.lines)

    def devices(self) -> dict[str, dict[str, Any]]:
        """GET /v1/devices with the API token the demo printed."""
        token = re.search(r"Authorization: Bearer (\S+)' \S+v1/devices", self.printed)
        assert token, "the demo prints how to read the fleet"
        request = urllib.request.Request(self.hq + "v1/devices", headers={"Authorization": f"Bearer {token[1]}"})
        return {row["device"]: row for row in get_json(request)}

    def synced(self, above: dict[str, int] | None = None) -> bool:
        """Both devices online, events stored from both, contiguous, beyond ``above``'s seq."""
        rows = self.devices()
        return all(
            name in rows
            and rows[name]["online"]
            and rows[name]["stored"] > 0
            and rows[name]["gaps"] == []
            and rows[name]["contiguous_seq"] > (above or {}).get(name, 0)
            for name in DEVICES
        )

    def stitched(self) -> bool:
        """Some loyalty customer's journey at HQ holds both in-store and web/app/till events."""
        token = re.search(r"Bearer (\S+)'", self.printed)
        assert token, self.printed
        request_headers = {"Authorization": f"Bearer {token[1]}"}
        for customer in CUSTOMERS:
            request = urllib.request.Request(f"{self.hq}v1/customers/{customer}/journey", headers=request_headers)
            with contextlib.suppress(urllib.error.HTTPError), urllib.request.urlopen(request, timeout=5) as answer:
                channels = {event["channel"] for event in json.loads(answer.read())["events"]}
                if "store" in channels and channels & {"web", "app", "pos"}:
                    return True
        return False

    def log_in(self) -> str:
        """Log in to the HQ dashboard with the printed demo login; returns the overview page."""
        user, password = re.search(r"login (\S+) / (\S+)", self.printed).groups()  # type: ignore[union-attr]
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(self.hq + "login", timeout=10) as form:
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.read().decode())[1]  # type: ignore[index]
        body = urllib.parse.urlencode({"name": user, "password": password, "csrf": csrf}).encode()
        with browser.open(self.hq + "login", data=body, timeout=30) as overview:
            assert overview.status == 200 and "/login" not in overview.url, overview.url
            return overview.read().decode()

    def stop(self, sig: signal.Signals = signal.SIGINT) -> str:
        """SIGINT (Ctrl-C) or SIGTERM; asserts a clean exit and that no child process outlives the demo."""
        children = children_of(self.process.pid)
        assert len(children) >= 5, children  # broker (Mosquitto), HQ, two edges, two sync agents
        self.process.send_signal(sig)
        output, _ = self.process.communicate(timeout=60)
        printed = self.printed + output
        assert self.process.returncode == 0, printed
        assert "demo stopped" in output and "Traceback" not in printed
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "left running"
        return printed

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@contextlib.contextmanager
def demo(workdir: Path, port: int, *options: str) -> Iterator[Demo]:
    running = Demo(workdir, port, *options)
    try:
        yield running
    finally:
        running.kill()  # a no-op once stop() ran


def stored_ids(workdir: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(workdir / "hq.db")) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM events")}


def test_demo_with_mosquitto_syncs_continues_where_it_stopped_and_starts_fresh(tmp_path: Path) -> None:
    workdir, port = tmp_path / "demo", free_ports()
    with demo(workdir, port, "--fresh", "--broker", "mosquitto") as first:
        assert "fresh start" in first.printed and "Mosquitto" in first.printed
        assert f"{first.mirror}staff" in first.printed and "PIN 4711" in first.printed
        assert f"{first.hq}v1/devices" in first.printed
        assert wait_until(first.synced, 40), first.devices()
        assert wait_until(lambda: bool(get_json(first.mirror + "api/presence")["zones"].get("cabin-1")), 40)
        present = get_json(first.mirror + "api/presence")["zones"]["cabin-1"]
        assert present[0]["gtin"].startswith("04012345")
        upto = {name: row["contiguous_seq"] for name, row in first.devices().items()}
        first.stop()

    with demo(workdir, port, "--broker", "mosquitto") as second:
        assert "continuing" in second.printed
        assert wait_until(lambda: second.synced(above=upto), 40), (upto, second.devices())
        second.stop()
    before = stored_ids(workdir)
    assert len(before) >= sum(upto.values())

    with demo(workdir, port, "--fresh", "--broker", "mosquitto") as fresh:
        assert "fresh start" in fresh.printed
        assert wait_until(fresh.synced, 40), fresh.devices()
        fresh.stop()
    assert stored_ids(workdir).isdisjoint(before)


def test_demo_with_the_embedded_broker(tmp_path: Path) -> None:
    port = free_ports()
    with demo(tmp_path / "demo", port, "--broker", "embedded") as running:
        assert "amqtt (embedded)" in running.printed
        assert wait_until(running.synced, 40), running.devices()
        assert wait_until(running.stitched, 40)
        assert "<html" in running.log_in().lower()
        assert wait_until(lambda: bool(get_json(running.mirror + "api/presence")["zones"].get("cabin-1")), 40)
        running.stop(signal.SIGTERM)
    config = (tmp_path / "demo" / "hq.toml").read_text()
    assert 'protocol = "3.1.1"' in config and 'share_group = ""' in config


@pytest.mark.parametrize("taken", [0, 3])
def test_a_taken_port_stops_the_demo_with_a_message_naming_it(tmp_path: Path, taken: int) -> None:
    port = free_ports()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port + taken))
        blocker.listen()
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "touchpoint"),
                "demo",
                "--workdir",
                str(tmp_path / "demo"),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port + taken}" in result.stdout and "--port" in result.stdout
    assert not (tmp_path / "demo").exists()  # nothing was started or written


def test_a_part_that_dies_stops_the_demo_with_its_name_and_log(tmp_path: Path) -> None:
    with demo(tmp_path / "demo", free_ports(), "--broker", "embedded") as running:
        children = children_of(running.process.pid)
        edge = next(
            pid
            for pid in children
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-4:-1]
            == [b"edge", b"--config", str(tmp_path / "demo" / "mirror-01.toml").encode()]
        )
        os.kill(edge, signal.SIGKILL)
        output, _ = running.process.communicate(timeout=60)
    assert running.process.returncode == 1
    assert "mirror-01 edge exited with -9; stopping the others" in output
    assert "mirror-01-edge.log" in output and "demo stopped" in output
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "left running"
