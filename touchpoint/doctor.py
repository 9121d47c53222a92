"""``touchpoint doctor``: is this device able to run? One plain sentence per check.

Each check takes its inputs (a path, a URL, the current time) and returns a :class:`Finding`:
OK, WARN or FAIL with what is wrong and what to do about it. The checks only look: the serial
port is opened without touching its line settings, the outbox is opened read-only, and a camera
frame is decoded in memory and dropped. Run it as the service's user, because permissions are
part of what it checks: ``sudo -u touchpoint touchpoint doctor --config /etc/touchpoint/edge.toml``.
"""

from __future__ import annotations

import enum
import grp
import json
import os
import shutil
import socket
import sqlite3
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from common import config as configuration
from common.errors import ConfigError

MB = 1024 * 1024
DISK_FAIL_BYTES = 50 * MB  # below this the outbox soon refuses events
DISK_WARN_BYTES = 500 * MB
DISK_WARN_SHARE = 0.05
CERT_WARN_DAYS = 14
CLOCK_SLACK_S = 60.0
CONNECT_TIMEOUT_S = 5.0


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    """The result of one check: its name, OK/WARN/FAIL and a sentence a person can act on."""

    check: str
    status: Status
    message: str


def ok(check: str, message: str) -> Finding:
    return Finding(check, Status.OK, message)


def warn(check: str, message: str) -> Finding:
    return Finding(check, Status.WARN, message)


def fail(check: str, message: str) -> Finding:
    return Finding(check, Status.FAIL, message)


def check_config(path: str | None) -> tuple[Finding, configuration.EdgeConfig | None]:
    """Load and validate the edge config (with its environment overrides)."""
    try:
        loaded = configuration.load_edge(path)
    except ConfigError as error:
        return fail("config", f"{error}. Fix the file (or the TOUCHPOINT_* variable) and run doctor again."), None
    return ok("config", f"{path or '(no file)'} is valid: {loaded.source}, role {loaded.device.role}."), loaded


def check_serial(url: str) -> Finding:
    """The reader's port: a device node this user may open, or a pyserial URL that opens."""
    if "://" in url:
        return _check_serial_url(url)
    path = Path(url)
    if not path.exists():
        return fail(
            "serial",
            f"{url} does not exist: plug in the reader, or set [reader] url to the "
            "port it appears as (see ls /dev/serial/by-id/).",
        )
    mode = path.stat().st_mode
    if not stat.S_ISCHR(mode):
        return fail("serial", f"{url} is not a character device: set [reader] url to the reader's port.")
    if not os.access(path, os.R_OK | os.W_OK, effective_ids=True):
        gid = path.stat().st_gid
        group = next((g.gr_name for g in grp.getgrall() if g.gr_gid == gid), str(gid))
        return fail(
            "serial",
            f"{url} is not readable and writable by this user: add the user to "
            f"group {group!r} (the service gets it through SupplementaryGroups=).",
        )
    try:
        # A plain open, not pyserial's: that would reconfigure the line under a running edge.
        descriptor = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as error:
        return fail(
            "serial",
            f"{url} does not open ({error.strerror}): check the reader's cable and "
            "driver (dmesg), and that no other program holds it.",
        )
    os.close(descriptor)
    return ok("serial", f"{url} opens for reading and writing.")


def _check_serial_url(url: str) -> Finding:
    import serial

    try:
        port = serial.serial_for_url(url, timeout=0)
    except (serial.SerialException, ValueError, OSError) as error:
        return fail("serial", f"{url} does not open ({error}): check [reader] url.")
    port.close()
    return ok("serial", f"{url} opens.")


def check_llrp(url: str, timeout: float = CONNECT_TIMEOUT_S) -> Finding:
    """An LLRP reader's address accepts a TCP connection (closed at once: a reader takes one client)."""
    from drivers.errors import ReaderError
    from drivers.llrp import address

    try:
        host, port = address(url)
        with socket.create_connection((host, port), timeout=timeout):
            return ok("serial", f"LLRP reader {host}:{port} accepts connections.")
    except ReaderError as error:
        return fail("serial", f"{error}: fix the reader's url.")
    except OSError as error:
        reason = getattr(error, "strerror", None) or str(error)
        return fail("serial", f"cannot reach LLRP reader {url} ({reason}): check its power, network and address.")


def check_camera(source: str) -> Finding:
    """The camera index, video file or image folder opens and yields a frame (then dropped)."""
    from drivers.camera import CameraError, open_source

    try:
        frames = open_source(source)
    except CameraError as error:
        return fail(
            "camera",
            f"{error}: check [camera] source and that the camera is connected "
            "(ls /dev/video*; the service gets it through group 'video').",
        )
    try:
        frame = frames.read()
    finally:
        frames.close()
    if frame is None:
        return warn(
            "camera",
            f"{source!r} opens but gave no frame: check the camera's cable and that no other program is using it.",
        )
    return ok("camera", f"{source!r} opens and delivers frames.")


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of an ``mqtt://`` or ``mqtts://`` URL; raises ValueError for anything else."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    port = parts.port  # raises ValueError when out of range
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url!r} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    return parts.hostname, port or (8883 if tls else 1883), tls


def check_broker(mqtt: configuration.MqttSection, timeout: float = CONNECT_TIMEOUT_S) -> Finding:
    """TCP connect to the broker, plus for mqtts:// the TLS handshake the sync agent would make.

    Under TLS 1.3 a broker refuses a missing client certificate only after the handshake, so
    that shows in :func:`check_mqtt_login`, not here.
    """
    from common.mqtt import MqttError, tls_context

    try:
        host, port, tls = broker_address(mqtt.url)
    except ValueError as error:
        return fail("broker", f"{error}: fix [mqtt] url.")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if not tls:
                return ok("broker", f"{host}:{port} accepts connections.")
            with tls_context(mqtt).wrap_socket(sock, server_hostname=host):
                return ok("broker", f"{host}:{port} accepts connections and its TLS certificate is trusted.")
    except MqttError as error:
        return fail("broker", f"{error}: fix the TLS files (see the tls check).")
    except ssl.SSLCertVerificationError as error:
        return fail(
            "broker",
            f"{host}:{port}: the broker's certificate is not trusted ({error.verify_message}): "
            "set [mqtt] ca_file to the CA that signed it, and use the name in its certificate.",
        )
    except (OSError, ValueError) as error:  # ValueError: a host name IDNA cannot encode
        reason = getattr(error, "strerror", None) or str(error)
        return fail(
            "broker",
            f"cannot reach {host}:{port} ({reason}): check [mqtt] url, the network "
            "and the firewall; events wait in the outbox meanwhile.",
        )


def check_mqtt_login(mqtt: configuration.MqttSection, client_id: str, timeout: float = CONNECT_TIMEOUT_S) -> Finding:
    """A real MQTT CONNECT with the config's protocol, TLS and credentials: does the broker accept us?

    ``client_id`` must differ from the sync agent's, or the broker would drop the agent; with
    MQTT 5 the session ends at disconnect, with 3.1.1 one fixed id keeps a single session.
    """
    from common.mqtt import ConnectionState, MqttClient, MqttError

    attempted = threading.Event()

    def on_state(state: ConnectionState, error: str) -> None:
        if state in (ConnectionState.CONNECTED, ConnectionState.DISCONNECTED):
            attempted.set()

    try:
        client = MqttClient(replace(mqtt, session_expiry_s=0), client_id, on_state=on_state)
    except MqttError as error:
        return fail("mqtt", f"{error}: fix the TLS files (see the tls check).")
    with client:
        attempted.wait(timeout)
        state, last_error = client.state, client.last_error
    who = f"user {mqtt.username!r}" if mqtt.username else "anonymous"
    if state is ConnectionState.CONNECTED:
        return ok("mqtt", f"the broker accepts {who} (MQTT {mqtt.protocol}).")
    return fail(
        "mqtt",
        f"the broker does not accept {who} ({last_error or 'no answer'}): check [mqtt] username, "
        "password and protocol against the broker's password file and ACL.",
    )


def judge_expiry(name: str, not_after: datetime, now: datetime) -> Finding:
    """A certificate's end date against ``now``."""
    left = not_after - now
    if left <= timedelta(0):
        return fail("tls", f"{name} expired on {not_after:%Y-%m-%d}: install a renewed certificate.")
    if left < timedelta(days=CERT_WARN_DAYS):
        return warn("tls", f"{name} expires on {not_after:%Y-%m-%d}, in {left.days} days: renew it soon.")
    return ok("tls", f"{name} is valid until {not_after:%Y-%m-%d}.")


def certificate_end(path: str) -> datetime:
    """The ``notAfter`` date of the first certificate in a PEM file (via the openssl CLI)."""
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", path], capture_output=True, text=True, check=False
    )
    if result.returncode or not result.stdout.startswith("notAfter="):
        raise ValueError(result.stderr.strip().splitlines()[0] if result.stderr.strip() else "not a certificate")
    end = datetime.strptime(result.stdout.strip()[len("notAfter=") :], "%b %d %H:%M:%S %Y %Z")
    return end.replace(tzinfo=timezone.utc)


def check_tls_files(mqtt: configuration.MqttSection, now: datetime) -> list[Finding]:
    """ca_file, cert_file and key_file: readable, certificates in date, the key fits the certificate."""
    findings = []
    for key in ("ca_file", "cert_file"):
        path = getattr(mqtt, key)
        if not path:
            continue
        if not os.access(path, os.R_OK, effective_ids=True):
            findings.append(
                fail(
                    "tls",
                    f"[mqtt] {key} {path} does not exist or is not readable by this user: "
                    "install it there, readable by group 'touchpoint'.",
                )
            )
            continue
        if shutil.which("openssl") is None:
            findings.append(warn("tls", f"{path} is readable; install openssl to have its expiry checked."))
            continue
        try:
            findings.append(judge_expiry(f"[mqtt] {key} {path}", certificate_end(path), now))
        except ValueError as error:
            findings.append(fail("tls", f"[mqtt] {key} {path} is not a PEM certificate ({error})."))
    if mqtt.cert_file and mqtt.key_file and all(f.status is not Status.FAIL for f in findings):
        try:
            ssl.create_default_context().load_cert_chain(mqtt.cert_file, mqtt.key_file)
        except (ssl.SSLError, OSError) as error:
            findings.append(
                fail(
                    "tls",
                    f"[mqtt] key_file {mqtt.key_file} does not fit cert_file or is not "
                    f"readable ({error}): install the key that belongs to the certificate.",
                )
            )
    if not findings:
        findings.append(
            ok(
                "tls",
                "no TLS files configured."
                if not mqtt.url.startswith("mqtts")
                else "mqtts:// with the system's CA certificates.",
            )
        )
    return findings


def judge_clock(now: float, recorded: Iterable[float], ntp_synchronized: bool | None) -> Finding:
    """The clock is wrong if it is behind times this device already wrote; unsynced is a warning."""
    newest = max(recorded, default=None)
    if newest is not None and now + CLOCK_SLACK_S < newest:
        behind = datetime.fromtimestamp(newest, timezone.utc) - datetime.fromtimestamp(now, timezone.utc)
        return fail(
            "clock",
            f"the clock is {behind} behind files this device already wrote: events would "
            "carry wrong times; connect the network so NTP can set it (timedatectl).",
        )
    if ntp_synchronized is False:
        return warn(
            "clock",
            "the clock is not synchronised by NTP: check the network and "
            "`timedatectl timesync-status`; events carry the device's time.",
        )
    state = "synchronised by NTP" if ntp_synchronized else "not behind this device's own records"
    return ok("clock", f"the clock is {state}.")


def ntp_synchronized() -> bool | None:
    """``timedatectl``'s NTPSynchronized, or None where timedated cannot answer (containers)."""
    if shutil.which("timedatectl") is None:
        return None
    result = subprocess.run(
        ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    value = result.stdout.strip()
    return {"yes": True, "no": False}.get(value) if result.returncode == 0 else None


def judge_disk(free: int, total: int, where: str) -> Finding:
    """Free space on the outbox's file system: FAIL when nearly full, WARN when low."""
    share = free / total if total else 0.0
    text = f"{free // MB} MB ({share:.0%}) free on {where}"
    if free < DISK_FAIL_BYTES:
        return fail("disk", f"only {text}: the outbox will refuse events; free space now.")
    if free < DISK_WARN_BYTES or share < DISK_WARN_SHARE:
        return warn("disk", f"{text}: free some space (old logs: journalctl --vacuum-size=100M).")
    return ok("disk", f"{text}.")


def existing_parent(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (the outbox may not be created yet)."""
    while not os.path.exists(path) and path != path.parent:
        path = path.parent
    return path


def check_outbox(path: str) -> Finding:
    """The outbox opens read-only and passes SQLite's quick integrity check."""
    try:
        present = Path(path).exists()
    except PermissionError:
        return fail(
            "outbox",
            f"{path} is out of reach: a folder on its way is not searchable by this user; "
            "fix the folders' owner or mode.",
        )
    if not present:
        parent = existing_parent(Path(path).parent)
        if not os.access(parent, os.W_OK, effective_ids=True):
            return fail(
                "outbox",
                f"{path} does not exist and {parent} is not writable by this user: "
                "fix [outbox] path or the directory's owner (the service uses StateDirectory=).",
            )
        return ok("outbox", f"{path} does not exist yet; the edge creates it at start.")
    try:
        conn = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as error:
        return fail("outbox", f"{path} does not open ({error}): check its owner and permissions.")
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        waiting = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.Error as error:
        return fail(
            "outbox",
            f"{path} is not a readable outbox ({error}): stop the edge and sync services "
            "and move the file aside; its unacknowledged events are still in it.",
        )
    finally:
        conn.close()
    if result != "ok":
        return fail(
            "outbox",
            f"{path} is damaged ({result}): stop the edge and sync services and move the "
            "file aside; its unacknowledged events are still in it.",
        )
    return ok("outbox", f"{path} is intact; {waiting} events wait for HQ.")


def examine(config_path: str | None, now: datetime) -> list[Finding]:
    """Every check for the edge config at ``config_path``; stops after the config if it is bad."""
    finding, loaded = check_config(config_path)
    if loaded is None:
        return [finding]
    findings = [finding]
    if not loaded.all_readers:
        findings.append(ok("serial", "no [reader] configured: RFID is off."))
    for reader in loaded.all_readers:
        findings.append(check_llrp(reader.url) if reader.protocol == "llrp" else check_serial(reader.url))
    if loaded.camera is None:
        findings.append(ok("camera", "no [camera] configured: QR codes are off."))
    else:
        findings.append(check_camera(loaded.camera.source))
    broker = check_broker(loaded.mqtt)
    findings.append(broker)
    if broker.status is Status.OK:
        client_id = f"touchpoint-doctor-{loaded.device.store_id}-{loaded.device.device_id}"
        findings.append(check_mqtt_login(loaded.mqtt, client_id))
    findings.extend(check_tls_files(loaded.mqtt, now))
    outbox = Path(loaded.outbox.path)
    recorded = [p.stat().st_mtime for p in outbox.parent.glob(outbox.name + "*")] if outbox.parent.exists() else []
    findings.append(judge_clock(now.timestamp(), recorded, ntp_synchronized()))
    where = existing_parent(outbox.parent)
    usage = shutil.disk_usage(where)
    findings.append(judge_disk(usage.free, usage.total, str(where)))
    findings.append(check_outbox(str(outbox)))
    return findings


def render_text(findings: list[Finding]) -> str:
    return "\n".join(f"{f.status.name:<4}  {f.check:<7} {f.message}" for f in findings)


def render_json(findings: list[Finding]) -> str:
    checks = [{**asdict(f), "status": f.status.value} for f in findings]
    return json.dumps({"ok": exit_code(findings) == 0, "checks": checks}, indent=2)


def exit_code(findings: list[Finding]) -> int:
    """0 when nothing failed (warnings included), 1 otherwise."""
    return 1 if any(f.status is Status.FAIL for f in findings) else 0
