"""The unit files in systemd/: systemd 252 itself checks them, and their exposure stays low.

``systemd-analyze verify`` insists that every ExecStart binary exists, so each unit is checked as
a staged copy whose binaries point at stand-ins in a temp dir; everything else stays as shipped.
It reports most mistakes (unknown keys, bad values) on stderr with exit code 0, so a unit passes
only with exit code 0 *and* nothing on stderr.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.acknowledger import ACK_SECRET, ack_key
from touchpoint.cli import main
from touchpoint.services import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[1]
UNIT_DIR = ROOT / "systemd"
UNITS = sorted(UNIT_DIR.glob("*.service"))
EDGE_UNITS = ["touchpoint-edge.service", "touchpoint-sync.service"]
HQ_UNITS = ["touchpoint-hq.service", "touchpoint-hq-web.service", "touchpoint-hq-ingest@.service"]
SERVICE_UNITS = EDGE_UNITS + HQ_UNITS
EXEC = re.compile(r"^(Exec\w+=[-@:+!]*)(/\S+)", re.MULTILINE)


def directives(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given, continuation lines joined (keys may repeat)."""
    text = path.read_text().replace("\\\n", " ")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", ";", "[")):
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def stage(unit_text: str, name: str, directory: Path) -> Path:
    """Write ``unit_text`` to ``directory/name`` with each Exec binary replaced by a stand-in."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)

    def stand_in(match: re.Match[str]) -> str:
        fake = bin_dir / Path(match.group(2)).name
        if not fake.exists():
            shutil.copy("/bin/true", fake)
        return match.group(1) + str(fake)

    staged = directory / name
    staged.write_text(EXEC.sub(stand_in, unit_text))
    return staged


def verify(*paths: Path) -> str:
    """What systemd-analyze verify objects to; empty when the units are clean."""
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = result.stderr.strip()
    if result.returncode and not problems:
        problems = f"exit code {result.returncode}"
    return problems


def exposure(path: Path) -> float:
    """The overall exposure score of ``systemd-analyze security --offline=yes``."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_the_units_are_all_there() -> None:
    assert [u.name for u in UNITS] == sorted(SERVICE_UNITS + ["touchpoint-kiosk-browser.service"])


def test_systemd_verifies_every_unit(tmp_path: Path) -> None:
    staged = [stage(unit.read_text(), unit.name, tmp_path) for unit in UNITS]
    assert verify(*staged) == ""


@pytest.mark.parametrize(
    ("mutation", "complaint"),
    [
        (("WatchdogSec=30", "WatchdogSecs=30"), "Unknown key 'WatchdogSecs'"),
        (("Type=notify", "Type=notfiy"), "Failed to parse service type"),
        (("Restart=on-failure", "Restart=sometimes"), "Failed to parse service restart specifier"),
        (("SystemCallFilter=@system-service", "SystemCallFilter=@no-such-set"), "@no-such-set"),
    ],
)
def test_verify_rejects_a_broken_unit(tmp_path: Path, mutation: tuple[str, str], complaint: str) -> None:
    text = (UNIT_DIR / "touchpoint-sync.service").read_text()
    assert mutation[0] in text
    staged = stage(text.replace(mutation[0], mutation[1]), "touchpoint-sync.service", tmp_path)
    assert complaint in verify(staged)


def test_verify_rejects_a_missing_binary(tmp_path: Path) -> None:
    unit = tmp_path / "touchpoint-edge.service"
    shutil.copy(UNIT_DIR / unit.name, unit)
    assert "/opt/touchpoint/bin/touchpoint is not executable" in verify(unit)


@pytest.mark.parametrize("name", SERVICE_UNITS)
def test_services_notify_watchdog_restart_and_run_unprivileged(name: str) -> None:
    found = directives(UNIT_DIR / name)
    for key, value in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("Restart", "on-failure"),
        ("User", "touchpoint"),
        ("StateDirectory", "touchpoint"),
        ("ConfigurationDirectory", "touchpoint"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("DevicePolicy", "closed"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("SystemCallFilter", "@system-service"),
    ]:
        assert value in found.get(key, []), f"{name}: {key}={value}"
    assert int(found["WatchdogSec"][0]) >= 10


def test_only_the_edge_reaches_serial_ports_and_cameras() -> None:
    edge = directives(UNIT_DIR / "touchpoint-edge.service")
    assert edge["SupplementaryGroups"] == ["dialout video"]
    allowed = {rule.split()[0] for rule in edge["DeviceAllow"]}
    assert {"char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-video4linux"} <= allowed
    assert "char-ttyS" not in allowed  # major 4 would include the virtual consoles
    for name in SERVICE_UNITS[1:]:
        found = directives(UNIT_DIR / name)
        assert "DeviceAllow" not in found and found["PrivateDevices"] == ["yes"], name


def test_the_browser_waits_for_the_edge_and_comes_back() -> None:
    found = directives(UNIT_DIR / "touchpoint-kiosk-browser.service")
    assert "touchpoint-edge.service" in found["BindsTo"] and "touchpoint-edge.service" in found["After"]
    assert found["Restart"] == ["always"]
    assert "http://127.0.0.1:8080/" in found["ExecStart"][0]
    assert found["User"] == ["touchpoint-kiosk"]  # not the user that owns the outbox
    assert found["IPAddressDeny"] == ["any"] and found["IPAddressAllow"] == ["localhost"]
    assert "ProtectClock" not in found  # its implied char-rtc allow-list would shut out /dev/dri


@pytest.mark.parametrize("name", SERVICE_UNITS)
def test_exec_start_runs_a_real_touchpoint_command(name: str) -> None:
    """The subcommand and options each unit passes exist in the CLI (checked via --help)."""
    argv = directives(UNIT_DIR / name)["ExecStart"][0].split()
    assert argv[0] == "/opt/touchpoint/bin/touchpoint"
    result = CliRunner().invoke(main, [argv[1], "--help"])
    assert result.exit_code == 0, result.output
    for option in (word for word in argv[2:] if word.startswith("--")):
        assert option in result.output, f"{name}: {argv[1]} has no {option}"


def readme_scores() -> dict[str, float]:
    """The exposure table in README.md: | `unit` | score | ... |."""
    rows = re.findall(r"^\| `(touchpoint-[\w@.-]+)` \| (\d+\.\d) \|", (ROOT / "README.md").read_text(), re.M)
    return {name: float(score) for name, score in rows}


def test_exposure_is_low_and_the_readme_says_what_it_is() -> None:
    measured = {unit.name: exposure(unit) for unit in UNITS}
    for name in SERVICE_UNITS:
        assert measured[name] <= 2.0, f"{name}: {measured[name]}"
    assert measured["touchpoint-kiosk-browser.service"] <= 3.5
    assert readme_scores() == measured


# -- the processes keep the units' promises: Type=notify, WatchdogSec=, NotifyAccess=main ------

WATCHDOG_USEC = 2_000_000  # a ping at least every second


def notify_socket(path: Path) -> socket.socket:
    """A datagram socket like systemd's, telling us the sender's pid of every message."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(60)  # a guard against hanging, not a measured time
    return sock


def receive(sock: socket.socket) -> tuple[int, set[str]]:
    """(sender pid, messages) of one datagram."""
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = next(
        struct.unpack("3i", d[:12])[0]
        for level, kind, d in ancillary
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
    )
    return pid, set(data.decode().splitlines())


def toml(document: dict[str, dict[str, object]]) -> str:
    return "".join(
        f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
        for name, table in document.items()
    )


def service_config(kind: str, tmp_path: Path, broker_url: str) -> Path:
    mqtt = {"url": broker_url, "protocol": "3.1.1"}
    web = {"listen": f"127.0.0.1:{free_port()}"}
    if kind == "hq":
        document = {
            "web": web,
            "mqtt": mqtt,
            "database": {"url": f"sqlite:///{tmp_path}/hq.db"},
            "hq": {"ack_secret": ACK_SECRET},
        }
    else:
        document = {
            "device": {"store_id": "test-store", "device_id": "mirror-1"},
            "web": web,
            "reader": {"protocol": "m100", "url": "loop://"},
            "mqtt": {**mqtt, "ack_key": ack_key()},
            "outbox": {"path": str(tmp_path / "edge.db")},
        }
    path = tmp_path / f"{kind}.toml"
    path.write_text(toml(document))
    return path


@pytest.mark.parametrize(
    ("unit", "broker_up"),
    [
        ("touchpoint-edge.service", True),
        ("touchpoint-sync.service", True),
        ("touchpoint-sync.service", False),
        ("touchpoint-hq-web.service", True),
        ("touchpoint-hq-ingest@.service", True),
    ],
    ids=["edge", "sync", "sync-broker-down", "hq-web", "hq-ingest"],
)
def test_each_service_reports_ready_pings_the_watchdog_and_stops_on_sigterm(
    unit: str, broker_up: bool, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Started as its unit starts it, the main process itself sends READY=1 (a sync agent also
    when the broker is down: a Pi must boot offline), then WATCHDOG=1, and SIGTERM ends it."""
    if not broker_up:
        mosquitto.kill()
    argv = directives(UNIT_DIR / unit)["ExecStart"][0].split()
    kind = "hq" if "hq" in argv[1] else "edge"
    config = service_config(kind, tmp_path, mosquitto.url)
    argv = [str(Path(sys.executable).parent / "touchpoint"), *argv[1:]]
    argv[argv.index("--config") + 1] = str(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHPOINT_")}
    env.update(NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC=str(WATCHDOG_USEC))
    with (
        notify_socket(tmp_path / "notify") as sock,
        subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process,
    ):
        try:
            seen: set[str] = set()
            while not {"READY=1", "WATCHDOG=1"} <= seen:
                pid, messages = receive(sock)
                assert pid == process.pid, f"{messages} came from pid {pid}, not the main process"
                seen |= messages
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=20)  # the units' TimeoutStopSec
        finally:
            process.kill()
    assert process.returncode in (0, -signal.SIGTERM), errors.decode()[-2000:]
