"""`touchpoint doctor` against real things: a pty, a real Mosquitto (plain and TLS), generated
certificates, a folder of images, real SQLite files, and the CLI end to end."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from common import config as configuration
from sync.outbox import Outbox
from tests.conftest import SOURCE
from touchpoint import doctor
from touchpoint.cli import main
from touchpoint.doctor import Status
from touchpoint.services import Mosquitto, free_port, wait_for_port

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def pty() -> Iterator[str]:
    """The slave side of a pseudo-terminal: a real character device, as a USB reader would be."""
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(slave)
    os.close(master)


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block as user nobody when we are root (root may open anything), else as we are."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> None:
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        "-days",
        "30",
        "-subj",
        f"/CN={name}",
        cwd=directory,
    )


@pytest.fixture(scope="module")
def pki() -> Iterator[Path]:
    """A CA, a server certificate it signed for 127.0.0.1 (valid 30 days), and an unrelated CA.

    Not under pytest's tmp_path: run as root, mosquitto drops to its own user before reading
    the files, and pytest's base directory is private to us.
    """
    directory = Path(tempfile.mkdtemp(prefix="tp-pki-"))
    directory.chmod(0o755)
    make_ca(directory, "ca")
    make_ca(directory, "other-ca")
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=directory,
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "30",
        "-extfile",
        "san.ext",
        cwd=directory,
    )
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/CN=mirror-03",
        cwd=directory,
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.pem",
        "-days",
        "30",
        cwd=directory,
    )
    for path in directory.iterdir():
        path.chmod(0o644)
    yield directory
    shutil.rmtree(directory)


@pytest.fixture(params=[False, True], ids=["server-cert", "client-cert-required"])
def tls_broker(request: pytest.FixtureRequest, tmp_path: Path, pki: Path) -> Iterator[tuple[int, bool]]:
    """A real Mosquitto with a TLS listener (the generated server certificate), with or without
    requiring client certificates; yields its port and whether it requires them."""
    port = free_port()
    extra = (
        f"listener {port} 127.0.0.1\ncafile {pki / 'ca.pem'}\n"
        f"certfile {pki / 'server.pem'}\nkeyfile {pki / 'server.key'}\n"
        f"require_certificate {'true' if request.param else 'false'}\n"
    )
    broker = Mosquitto(workdir=tmp_path / "mosquitto", extra_config=extra).start()
    try:
        wait_for_port(port)
        yield port, request.param
    finally:
        broker.kill()


def mqtt(url: str, ca_file: str = "") -> configuration.MqttSection:
    return configuration.MqttSection(url=url, ca_file=ca_file)


def write_config(tmp_path: Path, **sections: dict) -> Path:
    """An edge.toml whose outbox lives in tmp_path, with the given sections merged in."""
    document: dict[str, dict] = {
        "device": {"store_id": "test-store", "device_id": "mirror-1"},
        "outbox": {"path": str(tmp_path / "state" / "edge.db")},
        **sections,
    }
    lines = []
    for name, table in document.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in table.items())
    path = tmp_path / "edge.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_bad_config_is_the_only_finding(tmp_path: Path) -> None:
    path = write_config(tmp_path, mqtt={"url": "http://broker"})
    findings = doctor.examine(str(path), NOW)
    assert [(f.check, f.status) for f in findings] == [("config", Status.FAIL)]
    assert "mqtt.url" in findings[0].message and "Fix the file" in findings[0].message


def test_a_pty_opens(pty: str) -> None:
    finding = doctor.check_serial(pty)
    assert finding.status is Status.OK, finding


def test_a_port_this_user_may_not_open_names_the_group(pty: str) -> None:
    os.chmod(pty, 0)
    with unprivileged():
        finding = doctor.check_serial(pty)
    assert finding.status is Status.FAIL
    assert "not readable and writable by this user" in finding.message and "add the user to group" in finding.message


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("/dev/ttyUSB97", "does not exist"),
        ("/etc/hostname", "not a character device"),
        ("nosuch://x", "does not open"),
    ],
)
def test_serial_failures_say_what_to_fix(url: str, says: str) -> None:
    finding = doctor.check_serial(url)
    assert finding.status is Status.FAIL and says in finding.message and "[reader] url" in finding.message


def test_pyserial_urls_are_opened() -> None:
    assert doctor.check_serial("loop://").status is Status.OK
    refused = doctor.check_serial(f"socket://127.0.0.1:{free_port()}")
    assert refused.status is Status.FAIL


def test_a_folder_of_images_is_a_camera(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((16, 16, 3), np.uint8))
    assert doctor.check_camera(str(tmp_path)).status is Status.OK


def test_camera_failures(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert doctor.check_camera(str(tmp_path / "empty")).status is Status.FAIL
    assert doctor.check_camera("97").status is Status.FAIL  # no /dev/video97
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "frame.png").write_bytes(b"not an image")
    assert doctor.check_camera(str(tmp_path / "junk")).status is Status.WARN


def test_a_running_broker_is_reachable_and_a_closed_port_is_not(mosquitto: Mosquitto) -> None:
    assert doctor.check_broker(mqtt(mosquitto.url)).status is Status.OK
    closed = doctor.check_broker(mqtt(f"mqtt://127.0.0.1:{free_port()}"), timeout=2)
    assert closed.status is Status.FAIL and "Connection refused" in closed.message


def test_tls_handshake_is_verified_against_ca_file(tls_broker: tuple[int, bool], pki: Path) -> None:
    port, needs_client_cert = tls_broker
    url = f"mqtts://127.0.0.1:{port}"
    with_cert = configuration.MqttSection(
        url=url, ca_file=str(pki / "ca.pem"), cert_file=str(pki / "client.pem"), key_file=str(pki / "client.key")
    )
    assert doctor.check_broker(with_cert).status is Status.OK
    assert doctor.check_mqtt_login(with_cert, "touchpoint-doctor-test").status is Status.OK
    # TLS 1.3 refuses a missing client certificate only after the handshake: the login says so.
    without_cert = doctor.check_mqtt_login(mqtt(url, str(pki / "ca.pem")), "touchpoint-doctor-test")
    assert without_cert.status is (Status.FAIL if needs_client_cert else Status.OK), without_cert
    wrong = doctor.check_broker(mqtt(url, str(pki / "other-ca.pem")))
    assert wrong.status is Status.FAIL and "not trusted" in wrong.message


def test_tls_to_a_plain_listener_fails(mosquitto: Mosquitto, pki: Path) -> None:
    finding = doctor.check_broker(mqtt(f"mqtts://127.0.0.1:{mosquitto.port}", str(pki / "ca.pem")), timeout=2)
    assert finding.status is Status.FAIL


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto that admits only user mirror-1 with password right-one."""
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "mirror-1", "right-one"], check=True)
    # As root, Mosquitto drops to its own user, which cannot read pytest's private tmp; stay root.
    broker = Mosquitto(
        workdir=tmp_path / "mosquitto", anonymous=False, extra_config=f"user root\npassword_file {passwd}\n"
    ).start()
    yield broker
    broker.kill()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_broker_is_asked_whether_it_accepts_our_login(password_broker: Mosquitto, protocol: str) -> None:
    def login(**credentials: str) -> doctor.Finding:
        section = configuration.MqttSection(url=password_broker.url, protocol=protocol, **credentials)
        return doctor.check_mqtt_login(section, "touchpoint-doctor-test")

    assert login(username="mirror-1", password="right-one").status is Status.OK
    refused = login(username="mirror-1", password="wrong-one")
    assert refused.status is Status.FAIL and "does not accept user 'mirror-1'" in refused.message
    assert login().status is Status.FAIL  # anonymous


@given(st.from_regex(r"mqtts?://[^/:]+(:\d{1,5})?/?", fullmatch=True) | st.text(max_size=40))
def test_broker_address_parses_or_says_why_not(url: str) -> None:
    try:
        host, port, tls = doctor.broker_address(url)
    except ValueError:
        assert doctor.check_broker(mqtt(url)).status is Status.FAIL  # and no network is tried
        return
    assert host and 0 < port <= 65535 and tls is url.startswith("mqtts://")


def test_an_out_of_range_port_fails_plainly() -> None:
    assert configuration.mqtt_url("mqtt://broker:99999") is None  # the config lets it through
    finding = doctor.check_broker(mqtt("mqtt://broker:99999"))
    assert finding.status is Status.FAIL and "[mqtt] url" in finding.message
    unencodable = doctor.check_broker(mqtt("mqtt://" + "a" * 70 + ".example"))  # a DNS label over 63
    assert unencodable.status is Status.FAIL and "cannot reach" in unencodable.message


def test_certificate_files_in_date_expired_and_mismatched(pki: Path) -> None:
    section = configuration.MqttSection(
        url="mqtts://hq:8883",
        ca_file=str(pki / "ca.pem"),
        cert_file=str(pki / "server.pem"),
        key_file=str(pki / "server.key"),
    )
    today = datetime.now(timezone.utc)
    assert {f.status for f in doctor.check_tls_files(section, today)} == {Status.OK}
    assert {f.status for f in doctor.check_tls_files(section, today + timedelta(days=20))} == {Status.WARN}
    expired = doctor.check_tls_files(section, today + timedelta(days=40))
    assert {f.status for f in expired} == {Status.FAIL} and "expired" in expired[0].message
    mismatched = configuration.MqttSection(cert_file=str(pki / "server.pem"), key_file=str(pki / "ca.key"))
    assert doctor.check_tls_files(mismatched, today)[-1].status is Status.FAIL


def test_missing_or_bogus_certificate_files(pki: Path, tmp_path: Path) -> None:
    (tmp_path / "bogus.pem").write_text("hello")
    for path, says in [(tmp_path / "absent.pem", "does not exist"), (tmp_path / "bogus.pem", "not a PEM")]:
        (finding,) = doctor.check_tls_files(configuration.MqttSection(ca_file=str(path)), NOW)
        assert finding.status is Status.FAIL and says in finding.message


def test_clock_behind_own_records_unsynchronised_or_fine() -> None:
    now = NOW.timestamp()
    assert doctor.judge_clock(now, [now + 3600], True).status is Status.FAIL
    assert doctor.judge_clock(now, [now - 10], False).status is Status.WARN
    assert doctor.judge_clock(now, [now + 5], None).status is Status.OK  # within the slack
    assert doctor.judge_clock(now, [], True).status is Status.OK


@pytest.mark.parametrize(
    ("free_mb", "total_mb", "status"),
    [(10, 32_000, Status.FAIL), (400, 32_000, Status.WARN), (1000, 32_000, Status.WARN), (2000, 32_000, Status.OK)],
)
def test_disk_thresholds(free_mb: int, total_mb: int, status: Status) -> None:
    assert doctor.judge_disk(free_mb * doctor.MB, total_mb * doctor.MB, "/var/lib").status is status


SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}


@given(st.integers(0, 2**44), st.integers(0, 2**44), st.integers(1, 2**44))
def test_more_free_space_never_looks_worse(free: int, more: int, total: int) -> None:
    worse = doctor.judge_disk(min(free, total), total, "/")
    better = doctor.judge_disk(min(free + more, total), total, "/")
    assert SEVERITY[better.status] <= SEVERITY[worse.status]


@given(st.floats(0, 2e9), st.lists(st.floats(0, 2e9), max_size=5), st.sampled_from([True, False, None]))
def test_the_clock_fails_exactly_when_it_is_behind_its_own_records(
    now: float, recorded: list[float], synced: bool | None
) -> None:
    finding = doctor.judge_clock(now, recorded, synced)
    behind = any(now + doctor.CLOCK_SLACK_S < t for t in recorded)
    assert (finding.status is Status.FAIL) == behind


def test_an_outbox_with_events_is_intact(outbox: Outbox) -> None:
    outbox.append("session.started", {"session_id": "s-1"})
    finding = doctor.check_outbox(outbox.path)
    assert finding.status is Status.OK and "1 events wait" in finding.message


def test_a_damaged_or_foreign_outbox_fails(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "edge.db", SOURCE, capacity=10_000)
    box.append_many([("session.started", {"session_id": "s-1", "padding": "x" * 500})] * 400)
    box.close()
    data = bytearray((tmp_path / "edge.db").read_bytes())
    data[4096 * 3 : 4096 * 6] = b"\xff" * (4096 * 3)  # scribble over some of the events' pages
    (tmp_path / "edge.db").write_bytes(bytes(data))
    assert doctor.check_outbox(str(tmp_path / "edge.db")).status is Status.FAIL
    (tmp_path / "notes.db").write_text("not sqlite at all " * 100)
    assert doctor.check_outbox(str(tmp_path / "notes.db")).status is Status.FAIL


def test_a_missing_outbox_is_fine_only_where_it_can_be_created(tmp_path: Path) -> None:
    assert doctor.check_outbox(str(tmp_path / "new" / "edge.db")).status is Status.OK
    shared = Path(tempfile.mkdtemp(prefix="tp-doctor-"))  # searchable by everyone, writable by no one
    private = tmp_path / "private"  # not even searchable
    private.mkdir()
    shared.chmod(0o555)
    private.chmod(0)
    try:
        with unprivileged():
            not_writable = doctor.check_outbox(str(shared / "new" / "edge.db"))
            out_of_reach = doctor.check_outbox(str(private / "new" / "edge.db"))
    finally:
        private.chmod(0o755)
        shared.rmdir()
    assert not_writable.status is Status.FAIL and "not writable" in not_writable.message
    assert out_of_reach.status is Status.FAIL and "out of reach" in out_of_reach.message


def test_examine_covers_every_check(tmp_path: Path, pty: str, mosquitto: Mosquitto) -> None:
    cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((16, 16, 3), np.uint8))
    path = write_config(
        tmp_path, reader={"protocol": "m100", "url": pty}, camera={"source": str(tmp_path)}, mqtt={"url": mosquitto.url}
    )
    findings = doctor.examine(str(path), datetime.now(timezone.utc))
    assert [f.check for f in findings] == [
        "config",
        "serial",
        "camera",
        "broker",
        "mqtt",
        "tls",
        "clock",
        "disk",
        "outbox",
    ]
    assert str(tmp_path) in findings[7].message  # the outbox's file system, found from its folder
    assert all(f.status is not Status.FAIL for f in findings), findings


def test_cli_json_and_exit_codes(tmp_path: Path, mosquitto: Mosquitto) -> None:
    good = write_config(tmp_path, mqtt={"url": mosquitto.url})
    result = CliRunner().invoke(main, ["doctor", "--config", str(good), "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["ok"] is True
    assert {c["check"] for c in report["checks"]} >= {"config", "broker", "disk", "outbox"}
    mosquitto.kill()
    result = CliRunner().invoke(main, ["doctor", "--config", str(good)])
    assert result.exit_code == 1
    assert any(line.startswith("FAIL  broker") for line in result.output.splitlines())


def test_llrp_readers_are_checked_over_tcp(tmp_path: Path) -> None:
    from tests.llrp_peer import LlrpPeer

    with LlrpPeer() as peer:
        assert doctor.check_llrp(f"127.0.0.1:{peer.port}").status is Status.OK
        path = write_config(tmp_path)
        path.write_text(path.read_text() + f'[[readers]]\nprotocol = "llrp"\nurl = "127.0.0.1:{peer.port}"\n')
        assert [f.status for f in doctor.examine(str(path), NOW) if f.check == "serial"] == [Status.OK]
    refused = doctor.check_llrp(f"127.0.0.1:{free_port()}", timeout=2)
    assert refused.status is Status.FAIL and "cannot reach LLRP reader" in refused.message
    assert "fix the reader's url" in doctor.check_llrp("a:b:c").message
