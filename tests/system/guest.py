#!/usr/bin/python3
"""The system check's inside: run by ``system-check.service`` in the booted Debian system.

Plain Python 3.11 of the image (standard library only), as root, with the checkout read-only at
/srv/check/src and the work folder at /srv/check/work (the wheels in, results out). The kernel
command line says which boot this is:

- ``touchpoint.check=install``: install with ``systemd/install.sh`` exactly as README's Raspberry
  Pi section says, then HQ as the README's HQ paragraph says, prove what issue 17 asks, stop the
  broker so that events wait in the outbox, and ``systemctl poweroff``.
- ``touchpoint.check=after``: the previous boot's shutdown was clean, every event the outbox held
  at poweroff reaches HQ, then ``uninstall.sh`` and ``uninstall.sh --purge`` leave only what they
  promise, and power off again.

Every check prints one ``PASS``/``FAIL`` line to the console and goes into
/srv/check/work/result-PHASE.json; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

SRC = Path("/srv/check/src")
WORK = Path("/srv/check/work")
WHEEL = next((WORK / "dist").glob("touchpoint-*.whl"), None)
# Offline: pip takes the dependencies from the folder the host filled (README: PIP_* variables).
PIP_ENV = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WORK / "wheelhouse"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
EDGE_CONFIG = Path("/etc/touchpoint/edge.toml")
HQ_CONFIG = Path("/etc/touchpoint/hq.toml")
OUTBOX = Path("/var/lib/touchpoint/edge.db")
HQ_DB = Path("/var/lib/touchpoint/hq.db")
STORE, DEVICE = "berlin-01", "mirror-03"
EDGE_UNITS = ["touchpoint-edge.service", "touchpoint-sync.service"]
BROWSER = "touchpoint-kiosk-browser.service"
HQ_UNIT = "touchpoint-hq.service"
HQ_SPLIT = ["touchpoint-hq-web.service", "touchpoint-hq-ingest@1.service"]
# What the listing of the file system may differ in without it being Touchpoint's: the system's
# own logs and state, and pip's download cache of the root user who ran install.sh.
# Mosquitto's persistence file appears once the broker (part of the image, not of Touchpoint) ran.
VOLATILE = (
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
    "/var/tmp",
    "/srv/check",
    "/var/log",
    "/var/lib/systemd",
    "/var/lib/mosquitto",
)
results: list[dict[str, Any]] = []


def log(line: str) -> None:
    print(line, flush=True)


def sh(*argv: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """Run a command, return its stdout; a failure raises with its output."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def show(unit: str, *props: str) -> dict[str, str]:
    out = sh("systemctl", "show", unit, "-p", ",".join(props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll until ``predicate`` returns something true; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - the last error is reported on timeout
            last_error = f" (last: {error})"
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{last_error}")


def http(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def status() -> dict[str, Any]:
    return json.loads(http("http://127.0.0.1:8080/api/status")[1])


def journal(*args: str) -> list[dict[str, Any]]:
    out = sh("journalctl", "--no-pager", "-o", "json", *args, timeout=60)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def message(entry: dict[str, Any]) -> str:
    value = entry.get("MESSAGE", "")
    return bytes(value).decode(errors="replace") if isinstance(value, list) else str(value)


def unit_messages(unit: str, *args: str) -> list[tuple[int, str]]:
    """(monotonic µs, message) of systemd's own lines about ``unit`` in this boot."""
    return [(int(e["__MONOTONIC_TIMESTAMP"]), message(e)) for e in journal("-b", "_PID=1", f"UNIT={unit}", *args)]


def uptime_us() -> int:
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000)


def check(name: str) -> Callable[[Callable[[], str | None]], Callable[[], bool]]:
    """Run the decorated function as one named check; its return value is the detail shown."""

    def decorate(function: Callable[[], str | None]) -> Callable[[], bool]:
        def run() -> bool:
            started = time.monotonic()
            try:
                detail = function() or ""
                ok = True
            except Exception as error:  # noqa: BLE001 - every failure is a result, then we go on
                detail = f"{type(error).__name__}: {error}"
                if not isinstance(error, AssertionError):
                    detail += "\n" + traceback.format_exc()
                ok = False
            seconds = round(time.monotonic() - started, 1)
            results.append({"check": name, "ok": ok, "seconds": seconds, "detail": detail})
            log(f"{'PASS' if ok else 'FAIL'} {name} ({seconds} s): {detail}")
            return ok

        return run

    return decorate


def listing() -> set[str]:
    """Every path of the installed system outside the volatile places, with its type."""
    found = set()
    for top, dirs, files in os.walk("/", topdown=True):
        dirs[:] = [d for d in dirs if not os.path.join(top, d).startswith(VOLATILE)]
        for name in dirs + files:
            path = os.path.join(top, name)
            found.add(path + ("/" if os.path.isdir(path) and not os.path.islink(path) else ""))
    return found


def readiness(unit: str) -> str:
    """READY=1 came from the unit's main process before systemd called the unit active."""
    props = show(
        unit,
        "MainPID",
        "ActiveState",
        "StatusText",
        "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic",
        "Type",
        "NotifyAccess",
    )
    assert props["ActiveState"] == "active", props
    assert props["Type"] == "notify" and props["NotifyAccess"] == "main", props
    start, active = int(props["ExecMainStartTimestampMonotonic"]), int(props["ActiveEnterTimestampMonotonic"])
    pid = props["MainPID"]
    # systemd's own lines about the unit, in the order PID 1 wrote them (one stream, so the order
    # is exact even when journald stamps them late): the last "Starting", then READY=1 from the
    # main PID, and only then "Started" (the start job done: the unit is active).
    lines = [text for _, text in unit_messages(unit)]
    starting = max((i for i, text in enumerate(lines) if f"Starting {unit}" in text), default=None)
    assert starting is not None, f"{unit}: no 'Starting' line"
    after = lines[starting:]
    ready = next(
        (i for i, t in enumerate(after) if f"Got notification message from PID {pid} (" in t and "READY=1" in t), None
    )
    started = next((i for i, t in enumerate(after) if f"Started {unit}" in t), None)
    assert ready is not None, f"{unit}: no READY=1 from main PID {pid} after its last start: {after[:12]}"
    assert started is not None and ready < started, f"{unit}: 'Started' before READY=1: {after[:12]}"
    assert start < active, (start, active)
    return f"READY=1 from PID {pid}, active {(active - start) / 1e6:.2f} s after exec, status {props['StatusText']!r}"


def restart_and_watch(units: list[str]) -> None:
    """(Re)start ``units`` with systemd logging at debug, so that each READY=1 is in the journal."""
    sh("systemctl", "log-level", "debug")
    try:
        sh("systemctl", "restart", *units, timeout=180)
    finally:
        sh("systemctl", "log-level", "info")


def set_reader_port(port: str) -> None:
    """What an operator edits after install.sh: the reader's port in /etc/touchpoint/edge.toml."""
    text = EDGE_CONFIG.read_text()
    text = re.sub(r'(?m)^url = "/dev/[^"]*"', f'url = "{port}"', text)
    EDGE_CONFIG.write_text(text)


def set_ack_keys() -> None:
    """What an operator does for HQ's signed acks: a secret in hq.toml, and the device's key that
    ``touchpoint hq device-key`` prints (its last word) in edge.toml."""
    secret = os.urandom(24).hex()
    HQ_CONFIG.write_text(re.sub(r'(?m)^ack_secret = ""', f'ack_secret = "{secret}"', HQ_CONFIG.read_text()))
    printed = sh("/opt/touchpoint/bin/touchpoint", "hq", "device-key", STORE, DEVICE, "--config", str(HQ_CONFIG))
    text = re.sub(r'(?m)^ack_key = ""', f'ack_key = "{printed.split()[-1]}"', EDGE_CONFIG.read_text())
    EDGE_CONFIG.write_text(text)


def install_mirror(check: bool = True) -> str:
    """``install.sh`` for this device from the built wheel, as README's Raspberry Pi section says."""
    return sh(
        str(SRC / "systemd/install.sh"),
        "--role",
        "mirror",
        "--store",
        STORE,
        "--device",
        DEVICE,
        "--package",
        str(WHEEL),
        env=PIP_ENV,
        timeout=600,
        check=check,
    )


def outbox_counters(path: Path = OUTBOX) -> dict[str, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        seq, acked, dropped = db.execute("SELECT seq, acked, dropped FROM outbox_counters").fetchone()
        rows = [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]
    db.close()
    return {
        "last_seq": seq,
        "acked": acked,
        "dropped": dropped,
        "rows": len(rows),
        "contiguous": rows == list(range(acked + 1, seq + 1)),
    }


def hq_device() -> tuple[int, int]:
    """(contiguous_seq, events held) of our device at HQ."""
    with sqlite3.connect(f"file:{HQ_DB}?mode=ro", uri=True, timeout=10) as db:
        row = db.execute(
            "SELECT contiguous_seq FROM devices WHERE store = ? AND device = ?", (STORE, DEVICE)
        ).fetchone()
        (held,) = db.execute("SELECT count(*) FROM events WHERE store = ? AND device = ?", (STORE, DEVICE)).fetchone()
    db.close()
    return (row[0] if row else 0), held


def write_result(phase: str, extra: dict[str, Any]) -> bool:
    ok = bool(results) and all(r["ok"] for r in results)
    (WORK / f"result-{phase}.json").write_text(
        json.dumps({"phase": phase, "ok": ok, "checks": results, **extra}, indent=1)
    )
    return ok


def diagnostics(phase: str) -> None:
    """What to look at when something failed: the units' state and the journal."""
    out = WORK / f"diagnostics-{phase}.txt"
    parts = [
        sh("systemctl", "--no-pager", "status", "touchpoint*", check=False, timeout=30),
        sh("ps", "-eo", "pid,user,etime,time,rss,args", check=False, timeout=30),
        sh("journalctl", "--no-pager", "-b", "-u", "touchpoint-kiosk-browser", check=False, timeout=60),
        sh("journalctl", "--no-pager", "-b", "-n", "400", check=False, timeout=60),
    ]
    out.write_text("\n\n".join(parts))


# -- boot 1 ----------------------------------------------------------------------------------------


EMULATED_GPU = Path("/run/systemd/system/touchpoint-kiosk-browser.service.d/emulated-gpu.conf")


def emulated_gpu() -> None:
    """A runtime drop-in for this virtual machine only: wlroots renders with pixman, because Mesa's
    llvmpipe (kms_swrast, the only GL on a virtio GPU without virgl) segfaults under qemu's
    emulation. A Pi renders with its vc4 GPU; the unit as shipped is untouched (and /run is gone
    at the next boot, so each phase writes it again)."""
    EMULATED_GPU.parent.mkdir(parents=True, exist_ok=True)
    EMULATED_GPU.write_text("[Service]\nEnvironment=WLR_RENDERER=pixman\n")
    sh("systemctl", "daemon-reload")


def phase_install() -> dict[str, Any]:
    notes: dict[str, Any] = {}
    emulated_gpu()
    baseline = listing()
    (WORK / "listing-before.txt").write_text("\n".join(sorted(baseline)))

    @check("install.sh --package WHEEL, as README's Raspberry Pi section says")
    def install() -> str:
        assert WHEEL, "no wheel in /srv/check/work/dist"
        out = install_mirror()
        (WORK / "install.log").write_text(out)
        assert "running: touchpoint-edge.service touchpoint-sync.service touchpoint-kiosk-browser.service" in out, out
        for unit in [*EDGE_UNITS, BROWSER]:
            assert sh("systemctl", "is-enabled", unit).strip() == "enabled", unit
        return out.strip().splitlines()[-1]

    if not install():
        return notes

    @check("the reader through a pty passed in (host pty -> qemu -> /dev/ttyS0), read by the sandboxed edge")
    def reader() -> str:
        set_reader_port("/dev/ttyS0")  # the Pi's mini UART, the one ttyS the unit allows
        restart_and_watch(["touchpoint-edge.service"])
        got = wait("reads from /dev/ttyS0", lambda: (s := status())["reader"]["reads_total"] > 20 and s, 60)
        assert got["reader"]["state"] == "connected", got["reader"]
        pid = show("touchpoint-edge.service", "MainPID")["MainPID"]
        fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert "/dev/ttyS0" in fds, fds
        presence = wait(
            "a tag in the cabin", lambda: json.loads(http("http://127.0.0.1:8080/api/presence")[1])["zones"], 60
        )
        reader = got["reader"]
        tags = [tag["gtin"] for tags in presence.values() for tag in tags]
        return f"reader {reader['state']}, {reader['reads_total']} reads; in the cabin: {tags}"

    @check("touchpoint doctor passes, run as README says (sudo -u touchpoint)")
    def doctor() -> str:
        argv = ["sudo", "-u", "touchpoint", "/opt/touchpoint/bin/touchpoint", "doctor", "--config", str(EDGE_CONFIG)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        out, code = done.stdout + done.stderr, done.returncode
        (WORK / "doctor.txt").write_text(out)
        assert code == 0 and "FAIL" not in out, out
        return " | ".join(line.split()[0] + " " + line.split()[1] for line in out.splitlines() if line.strip())

    @check("outbox written under ProtectSystem=strict (only /var/lib/touchpoint writable)")
    def outbox() -> str:
        first = outbox_counters()
        later = wait(
            "more events in the outbox", lambda: (c := outbox_counters())["last_seq"] > first["last_seq"] and c, 90
        )
        owner = OUTBOX.stat()
        assert owner.st_uid == int(sh("id", "-u", "touchpoint")), owner
        return f"last seq {first['last_seq']} -> {later['last_seq']}, file owned by touchpoint"

    @check("HQ installed as README's HQ paragraph says; touchpoint-hq.service active only after READY=1")
    def hq() -> str:
        shutil.copy(SRC / "examples/hq.toml", HQ_CONFIG)
        shutil.chown(HQ_CONFIG, "root", "touchpoint")
        HQ_CONFIG.chmod(0o640)
        sh("/opt/touchpoint/bin/pip", "install", "--quiet", str(WHEEL), env=PIP_ENV, timeout=300)
        set_ack_keys()  # the next check restarts the sync agent with its key
        for unit in ("touchpoint-hq.service", "touchpoint-hq-web.service", "touchpoint-hq-ingest@.service"):
            shutil.copy(SRC / "systemd" / unit, Path("/etc/systemd/system") / unit)
        sh("systemctl", "daemon-reload")
        sh("systemctl", "enable", "--quiet", HQ_UNIT)
        restart_and_watch([HQ_UNIT])
        code, body = http("http://127.0.0.1:8090/healthz")
        assert code == 200, body
        return readiness(HQ_UNIT) + f"; /healthz on 127.0.0.1:8090: {body.decode().strip()}"

    @check("touchpoint-edge and touchpoint-sync active only after READY=1 from their main process")
    def ready() -> str:
        restart_and_watch(EDGE_UNITS)
        code, _ = http("http://127.0.0.1:8080/healthz")
        assert code == 200
        return "; ".join(f"{unit}: {readiness(unit)}" for unit in EDGE_UNITS)

    @check("events reach HQ: sync agent (PrivateDevices, PrivateUsers) -> Mosquitto -> HQ's ingest, acked")
    def delivery() -> str:
        target = outbox_counters()["last_seq"]
        contiguous = wait(f"HQ holding seq 1..{target}", lambda: (h := hq_device())[0] >= target and h, 120)
        acked = wait("the ack back in the outbox", lambda: (c := outbox_counters())["acked"] >= target and c, 60)
        return f"HQ contiguous_seq {contiguous[0]} ({contiguous[1]} events), outbox acked up to {acked['acked']}"

    @check("HQ's split layout: touchpoint-hq-web and touchpoint-hq-ingest@1 active after READY=1, conflicts honoured")
    def hq_split() -> str:
        restart_and_watch(HQ_SPLIT)
        assert show(HQ_UNIT, "ActiveState")["ActiveState"] == "inactive", "Conflicts= did not stop touchpoint-hq"
        detail = "; ".join(f"{unit}: {readiness(unit)}" for unit in HQ_SPLIT)
        target = outbox_counters()["last_seq"]
        wait(f"the split HQ storing up to seq {target}", lambda: hq_device()[0] >= target, 120)
        restart_and_watch([HQ_UNIT])  # back to the one-process layout, which is enabled
        assert all(show(u, "ActiveState")["ActiveState"] == "inactive" for u in HQ_SPLIT)
        return detail

    @check("journalctl -o json: each process logs one JSON object a line")
    def json_logs() -> str:
        found = {}
        for unit in [*EDGE_UNITS, HQ_UNIT]:
            lines = [message(e) for e in journal("-b", "-u", unit, "_TRANSPORT=stdout")]
            parsed = []
            for line in lines:
                if line.startswith("{"):
                    parsed.append(json.loads(line))
            assert parsed, f"{unit}: no JSON line among {lines[-5:]}"
            assert {"time", "level", "logger", "message"} <= parsed[-1].keys(), parsed[-1]
            found[unit] = f"{len(parsed)} JSON lines, e.g. {json.dumps(parsed[0])[:120]}"
        return "; ".join(f"{u}: {d}" for u, d in found.items())

    @check("kiosk browser: cage + Chromium on tty1 show the mirror page full screen (screenshot from inside)")
    def browser() -> str:
        wait(f"{BROWSER} active", lambda: show(BROWSER, "ActiveState")["ActiveState"] == "active", 60)
        assert show("getty@tty1.service", "ActiveState")["ActiveState"] != "active", "getty still owns tty1"
        wait("the mirror page's event stream connected", lambda: status()["stream"]["clients"] >= 1, 120)
        wait("garments in the cabin", lambda: json.loads(http("http://127.0.0.1:8080/api/presence")[1])["zones"], 60)
        time.sleep(8)  # the cards' images load and the page settles
        uid = sh("id", "-u", "touchpoint-kiosk").strip()
        env = ["env", f"XDG_RUNTIME_DIR=/run/user/{uid}", "WAYLAND_DISPLAY=wayland-0"]
        home = Path("/var/lib/touchpoint-kiosk")
        sh("runuser", "-u", "touchpoint-kiosk", "--", *env, "grim", "-t", "ppm", str(home / "screen.ppm"), timeout=30)
        sh("runuser", "-u", "touchpoint-kiosk", "--", *env, "grim", str(home / "screen.png"), timeout=30)
        shutil.copy(home / "screen.png", WORK / "mirror-screen.png")
        width, height, colours, dark = ppm_summary(home / "screen.ppm")
        for name in ("screen.ppm", "screen.png"):
            (home / name).unlink()
        mode = Path(next(Path("/sys/class/drm").glob("card0-*/modes")) / "").read_text().split()[0]
        assert f"{width}x{height}" == mode, f"screenshot {width}x{height}, display mode {mode}"
        assert colours > 200, f"only {colours} colours: a blank screen"
        session = sh("loginctl", "list-sessions", "--no-legend")
        assert "touchpoint-kiosk" in session and "tty1" in session, session
        return (
            f"{width}x{height} = the display's mode, {colours} colours, {dark:.0%} dark pixels; "
            f"logind session: {' '.join(session.split())}"
        )

    @check("watchdog: the edge SIGSTOPped is killed within WatchdogSec and restarted; the browser follows")
    def watchdog() -> str:
        unit = "touchpoint-edge.service"
        before = show(unit, "MainPID", "NRestarts", "WatchdogUSec")
        limit_s = int(before["WatchdogUSec"].rstrip("s")) if before["WatchdogUSec"].endswith("s") else 30
        stopped_at = uptime_us()
        sh("systemctl", "kill", "-s", "SIGSTOP", "--kill-whom=main", unit)
        fired = wait(
            "systemd's watchdog timeout",
            lambda: [ts for ts, text in unit_messages(unit) if ts > stopped_at and "Watchdog timeout" in text],
            limit_s + 15,
        )[0]
        after = wait(
            "the edge back with a new PID",
            lambda: (
                (p := show(unit, "MainPID", "NRestarts", "ActiveState"))["ActiveState"] == "active"
                and p["MainPID"] not in ("0", before["MainPID"])
                and p
            ),
            90,
        )
        assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1, (before, after)
        waited = (fired - stopped_at) / 1e6
        assert waited <= limit_s + 1, f"the watchdog fired {waited:.1f} s after SIGSTOP, WatchdogSec={limit_s}"
        wait("the kiosk browser back", lambda: show(BROWSER, "ActiveState")["ActiveState"] == "active", 60)
        wait("the page reconnected", lambda: status()["stream"]["clients"] >= 1, 120)
        return (
            f"SIGSTOP at PID {before['MainPID']}: watchdog fired after {waited:.1f} s (limit {limit_s} s), "
            f"new PID {after['MainPID']}, NRestarts {after['NRestarts']}; browser and page back"
        )

    @check("crash: SIGKILL of the edge and of the sync agent restarts each after RestartSec")
    def crash() -> str:
        details = []
        for unit in EDGE_UNITS:
            before = show(unit, "MainPID", "NRestarts", "RestartUSec")
            restart_s = float(before["RestartUSec"].rstrip("s"))
            killed_at = uptime_us()
            sh("systemctl", "kill", "-s", "SIGKILL", "--kill-whom=main", unit)
            after = wait(
                f"{unit} back",
                lambda u=unit, b=before: (
                    (p := show(u, "MainPID", "NRestarts", "ActiveState", "ExecMainStartTimestampMonotonic"))[
                        "ActiveState"
                    ]
                    == "active"
                    and p["MainPID"] not in ("0", b["MainPID"])
                    and p
                ),
                90,
            )
            exited = [
                ts for ts, text in unit_messages(unit) if ts >= killed_at and "code=killed, status=9/KILL" in text
            ]
            assert exited, f"{unit}: no 'Main process exited, code=killed' line"
            delay = (int(after["ExecMainStartTimestampMonotonic"]) - exited[0]) / 1e6
            assert restart_s <= delay < restart_s + 10, f"{unit}: restarted {delay:.2f} s after the crash"
            assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1, (before, after)
            details.append(f"{unit} restarted {delay:.2f} s after SIGKILL (RestartSec={restart_s:g}s)")
        return "; ".join(details)

    for step in (reader, doctor, outbox, hq, ready, delivery, hq_split, json_logs, browser, watchdog, crash):
        step()

    # Events that wait in the outbox when the power goes: stop the broker, let the reader add more.
    @check("broker stopped: events wait in the outbox for the poweroff")
    def offline() -> str:
        sh("systemctl", "stop", "mosquitto.service")
        first = outbox_counters()
        later = wait(
            "events waiting",
            lambda: (c := outbox_counters())["rows"] >= 3 and c["last_seq"] > first["last_seq"] and c,
            90,
        )
        notes["before_poweroff"] = later
        return f"{later['rows']} events waiting (seq {later['acked'] + 1}..{later['last_seq']})"

    offline()
    return notes


def ppm_summary(path: Path) -> tuple[int, int, int, float]:
    """(width, height, distinct colours, share of dark pixels) of a binary PPM (P6)."""
    data = path.read_bytes()
    fields = data.split(maxsplit=4)
    assert fields[0] == b"P6", fields[:4]
    width, height, pixels = int(fields[1]), int(fields[2]), fields[4]
    sample = {pixels[i : i + 3] for i in range(0, len(pixels), 3 * 7)}
    dark = sum(1 for i in range(0, len(pixels), 3 * 97) if sum(pixels[i : i + 3]) < 96) / (len(pixels) / (3 * 97))
    return width, height, len(sample), dark


# -- boot 2 ----------------------------------------------------------------------------------------


def phase_after() -> dict[str, Any]:
    notes: dict[str, Any] = {}
    emulated_gpu()
    sh("systemctl", "restart", "--no-block", BROWSER, check=False)
    at_poweroff = json.loads((WORK / "outbox-after-poweroff.json").read_text())

    @check("systemctl poweroff stopped every Touchpoint unit cleanly (journal of the previous boot)")
    def clean_stop() -> str:
        entries = [(e.get("UNIT", ""), message(e)) for e in journal("-b", "-1", "_PID=1")]
        want = [*EDGE_UNITS, BROWSER, HQ_UNIT]
        stopped, bad = [], []
        for unit in want:
            # The unit's last "Stopping" in that boot is the poweroff's (the browser, ordered after
            # the edge, stops before it; earlier ones are the check's own restarts).
            lines = [m for u, m in entries if u == unit]
            stops = [i for i, m in enumerate(lines) if f"Stopping {unit}" in m]
            assert stops, f"{unit}: never stopped in the previous boot"
            after = lines[stops[-1] :]
            bad += [
                f"{unit}: {m}"
                for m in after
                if re.search(r"timed out|Killing|Failed with result|code=killed|status=\d+/", m)
                and "status=0/SUCCESS" not in m
            ]
            if any("Deactivated successfully" in m for m in after):
                stopped.append(unit)
        assert not bad, bad
        assert stopped == want, f"not deactivated cleanly: {sorted(set(want) - set(stopped))}"
        final = [message(e) for e in journal("-b", "-1", "-u", "touchpoint-edge.service", "_TRANSPORT=stdout")][-3:]
        return f"deactivated successfully: {', '.join(sorted(stopped))}; the edge's last lines: {final}"

    @check("nothing lost from the outbox: what it held at poweroff is intact and all of it reaches HQ")
    def nothing_lost() -> str:
        assert at_poweroff["contiguous"] and at_poweroff["integrity"] == "ok", at_poweroff
        assert not at_poweroff["wal_left"], "the outbox's WAL was not checkpointed: not closed cleanly"
        before = at_poweroff["before_poweroff"]
        assert at_poweroff["last_seq"] >= before["last_seq"] and at_poweroff["rows"] >= before["rows"], at_poweroff
        target = at_poweroff["last_seq"]
        held = wait(f"HQ holding seq 1..{target}", lambda: (h := hq_device())[0] >= target and h, 180)
        return (
            f"at poweroff {at_poweroff['rows']} waiting (seq {at_poweroff['acked'] + 1}..{target}, no gap, "
            f"integrity ok, WAL checkpointed); after boot HQ contiguous_seq {held[0]}"
        )

    @check("the units came back at boot by themselves (enabled), each after READY=1")
    def at_boot() -> str:
        for unit in [*EDGE_UNITS, HQ_UNIT, BROWSER]:
            wait(f"{unit} active", lambda u=unit: show(u, "ActiveState")["ActiveState"] == "active", 120)
        return "; ".join(f"{unit}: {show(unit, 'StatusText')['StatusText']!r}" for unit in [*EDGE_UNITS, HQ_UNIT])

    for step in (clean_stop, nothing_lost, at_boot):
        step()

    baseline = set((WORK / "listing-before.txt").read_text().splitlines())
    counters_before = outbox_counters()

    @check("HQ removed the way it was put there (its units, hq.toml, hq.db)")
    def remove_hq() -> str:
        sh("systemctl", "disable", "--now", "--quiet", HQ_UNIT)
        for unit in ("touchpoint-hq.service", "touchpoint-hq-web.service", "touchpoint-hq-ingest@.service"):
            (Path("/etc/systemd/system") / unit).unlink()
        sh("systemctl", "daemon-reload")
        HQ_CONFIG.unlink()
        for path in Path("/var/lib/touchpoint").glob("hq.db*"):
            path.unlink()
        return "disabled, stopped and deleted"

    @check("uninstall.sh keeps exactly the outbox, the config and the users")
    def uninstall() -> str:
        out = sh(str(SRC / "systemd/uninstall.sh"), timeout=120)
        (WORK / "uninstall.log").write_text(out)
        units = sh("systemctl", "list-units", "--all", "--no-legend", "touchpoint*")
        assert not units.strip(), units
        assert not sh("systemctl", "list-unit-files", "--no-legend", "touchpoint*", check=False).strip()
        # The browser's `systemd --user` outlives its session by logind's UserStopDelaySec= (10 s).
        wait(
            "no processes of the two users",
            lambda: not sh("pgrep", "-u", "touchpoint,touchpoint-kiosk", check=False).strip(),
            40,
        )
        new = sorted(listing() - baseline)
        kept = ("/var/lib/touchpoint/", "/var/lib/touchpoint-kiosk/", "/etc/touchpoint/")
        unexpected = [p for p in new if not p.startswith(kept) and not p.startswith("/root/.cache/pip")]
        assert not unexpected, f"left behind: {unexpected}"
        assert {"/var/lib/touchpoint/edge.db", "/etc/touchpoint/edge.toml"} <= set(new), new
        gone = sorted(baseline - listing())
        assert not gone, f"removed what was there before: {gone}"
        # The edge may record a few more events before uninstall.sh stops it: the outbox must still
        # hold every event it did not get acknowledged, gap-free ("contiguous").
        counters = outbox_counters()
        assert counters["last_seq"] >= counters_before["last_seq"] and counters["contiguous"], counters
        sh("id", "touchpoint")
        sh("id", "touchpoint-kiosk")
        notes["kept_after_uninstall"] = [p for p in new if not p.startswith("/var/lib/touchpoint-kiosk/.")]
        return f"{len(new)} paths more than before install, all under {', '.join(kept)} (and pip's cache)"

    @check("uninstall.sh --purge leaves the system as it was before install.sh")
    def purge() -> str:
        out = sh(str(SRC / "systemd/uninstall.sh"), "--purge", timeout=120)
        (WORK / "purge.log").write_text(out)
        now = listing()
        new = sorted(p for p in now - baseline if not p.startswith("/root/.cache/pip"))
        gone = sorted(baseline - now)
        assert not new and not gone, f"new: {new}, gone: {gone}"
        accounts = Path("/etc/passwd").read_text() + Path("/etc/group").read_text() + Path("/etc/shadow").read_text()
        assert not re.search(r"(?m)^touchpoint", accounts), "a touchpoint user or group is left"
        return "the same paths as before install.sh (apart from pip's cache); no touchpoint users or groups"

    for step in (remove_hq, uninstall, purge):
        step()
    return notes


def phase_shell() -> dict[str, Any]:
    """For working on the check: install if needed, then run each WORK/cmd/NAME.sh the host drops
    in (output to NAME.out) until WORK/cmd/stop appears or 40 minutes pass."""
    if not Path("/opt/touchpoint/bin/touchpoint").exists():
        install_mirror(check=False)
    inbox = WORK / "cmd"
    inbox.mkdir(exist_ok=True)
    deadline = time.monotonic() + 2400
    while time.monotonic() < deadline and not (inbox / "stop").exists():
        for script in sorted(inbox.glob("*.sh")):
            out = script.with_suffix(".out")
            if not out.exists():
                done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600, check=False)
                out.write_text(done.stdout + done.stderr + f"\n[exit {done.returncode}]\n")
        time.sleep(1)
    results.append({"check": "shell", "ok": True, "seconds": 0, "detail": ""})
    return {}


# -- arm64 (Raspberry Pi) under qemu-user-static -----------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def phase_arm64() -> dict[str, Any]:
    """In an arm64 bookworm chroot (every binary emulated): install.sh, every module imports, the
    edge starts and serves, and ``touchpoint doctor`` passes against a real reader pty and broker."""
    notes: dict[str, Any] = {}
    procs: list[subprocess.Popen[bytes]] = []

    @check("arm64: the machine is aarch64 (qemu-user-static), bookworm's Python 3.11")
    def machine() -> str:
        arch = sh("uname", "-m").strip()
        assert arch == "aarch64", arch
        return f"{arch}, {sh('python3', '--version').strip()}, {Path('/etc/debian_version').read_text().strip()}"

    @check("arm64: install.sh --package WHEEL (--no-apt --no-systemctl: no systemd runs in a chroot)")
    def install() -> str:
        out = sh(
            str(SRC / "systemd/install.sh"),
            "--role",
            "mirror",
            "--store",
            STORE,
            "--device",
            DEVICE,
            "--package",
            str(WHEEL),
            "--no-apt",
            "--no-systemctl",
            env=PIP_ENV,
            timeout=1500,
        )
        (WORK / "install-arm64.log").write_text(out)
        assert "units installed; not enabled (--no-systemctl)" in out, out
        return out.strip().splitlines()[-2]

    @check("arm64: every module of the wheel imports")
    def imports() -> str:
        code = (
            "import importlib, pkgutil, platform\n"
            "names = []\n"
            "for top in ('touchpoint', 'drivers', 'kiosk', 'ui', 'sync', 'hq'):\n"
            "    package = importlib.import_module(top)\n"
            "    names.append(top)\n"
            "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
            "        importlib.import_module(info.name)\n"
            "        names.append(info.name)\n"
            "import cv2, numpy, zxingcpp, psycopg\n"
            "print(platform.machine(), len(names), cv2.__version__, numpy.__version__, psycopg.pq.version())\n"
        )
        out = sh("/opt/touchpoint/bin/python", "-c", code, timeout=900).split()
        assert out[0] == "aarch64" and int(out[1]) > 50, out
        return f"{out[1]} modules on {out[0]}; OpenCV {out[2]}, numpy {out[3]}, libpq {out[4]}"

    @check("arm64: the edge runs, and touchpoint doctor passes as the touchpoint user")
    def doctor() -> str:
        broker_port, web_port = free_port(), free_port()
        conf = Path("/tmp/mosquitto-arm64.conf")
        conf.write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        procs.append(subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL))
        reader = subprocess.Popen(
            [
                "runuser",
                "-u",
                "touchpoint",
                "--",
                "/opt/touchpoint/bin/touchpoint",
                "simulate-reader",
                "--protocol",
                "m100",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        procs.append(reader)
        assert reader.stdout is not None
        tty = reader.stdout.readline().decode().strip()
        assert tty.startswith("/dev/pts/"), tty
        text = EDGE_CONFIG.read_text()
        text = re.sub(r'(?m)^url = "/dev/[^"]*"', f'url = "{tty}"', text)
        text = re.sub(r'(?m)^url = "mqtt://[^"]*"', f'url = "mqtt://127.0.0.1:{broker_port}"', text)
        text = re.sub(r'(?m)^listen = "[^"]*"', f'listen = "127.0.0.1:{web_port}"', text)
        EDGE_CONFIG.write_text(text)
        Path("/var/lib/touchpoint").mkdir(exist_ok=True)
        shutil.chown("/var/lib/touchpoint", "touchpoint", "touchpoint")
        edge = subprocess.Popen(
            [
                "runuser",
                "-u",
                "touchpoint",
                "--",
                "/opt/touchpoint/bin/touchpoint",
                "edge",
                "--config",
                str(EDGE_CONFIG),
            ],
            cwd="/var/lib/touchpoint",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(edge)
        url = f"http://127.0.0.1:{web_port}"
        wait("the arm64 edge's /healthz", lambda: http(url + "/healthz")[0] == 200, 600, interval=2)
        got = wait(
            "reads from the pty",
            lambda: (j := json.loads(http(url + "/api/status")[1]))["reader"]["reads_total"] > 5 and j,
            300,
            interval=2,
        )
        argv = [
            "runuser",
            "-u",
            "touchpoint",
            "--",
            "/opt/touchpoint/bin/touchpoint",
            "doctor",
            "--config",
            str(EDGE_CONFIG),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        (WORK / "doctor-arm64.txt").write_text(done.stdout + done.stderr)
        assert done.returncode == 0 and "FAIL" not in done.stdout, done.stdout + done.stderr
        summary = " | ".join(" ".join(line.split()[:2]) for line in done.stdout.splitlines() if line.strip())
        reader = got["reader"]
        return f"edge serving on {url}, reader {reader['state']} ({reader['reads_total']} reads); doctor: {summary}"

    try:
        if machine() and install() and imports():
            doctor()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        sh("pkill", "-u", "touchpoint", check=False)
    return notes


def main() -> int:
    phase = (
        sys.argv[1]
        if len(sys.argv) > 1
        else next(
            (
                w.split("=", 1)[1]
                for w in Path("/proc/cmdline").read_text().split()
                if w.startswith("touchpoint.check=")
            ),
            "",
        )
    )
    log(
        f"system check, phase {phase!r}, systemd {sh('systemctl', '--version').split()[1]}, kernel {os.uname().release}"
    )

    def too_long(signum: int, frame: object) -> None:
        raise TimeoutError("the phase took more than 25 minutes")

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(1500)  # a bound on the whole phase, whatever hangs
    notes: dict[str, Any] = {}
    try:
        if phase == "install":
            notes = phase_install()
        elif phase == "after":
            notes = phase_after()
        elif phase == "shell":
            notes = phase_shell()
        elif phase == "arm64":
            notes = phase_arm64()
        else:
            log("no touchpoint.check= on the kernel command line: nothing to do")
            return 0
    except Exception:  # noqa: BLE001
        results.append({"check": "the check itself", "ok": False, "seconds": 0, "detail": traceback.format_exc()})
        log(traceback.format_exc())
    ok = write_result(phase, notes)
    if not ok:
        diagnostics(phase)
    if phase == "arm64":  # a chroot, not a booted system
        log(f"system check phase {phase}: {'PASSED' if ok else 'FAILED'}")
        return 0 if ok else 1
    log(f"system check phase {phase}: {'PASSED' if ok else 'FAILED'}; powering off")
    sys.stdout.flush()
    subprocess.run(["systemctl", "poweroff", "--no-block"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
