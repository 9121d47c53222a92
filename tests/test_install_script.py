"""systemd/install.sh and uninstall.sh, run for real into a temporary root (``--root DIR``).

Users are created by the real useradd (``--prefix``) in a copy of this machine's /etc, the
virtualenv by the real venv and pip (``PIP_NO_DEPS``: the dependencies are this repo's business,
not the script's), and the units are enabled by the real ``systemctl --root``. Only starting the
services is out of reach here: there is no systemd running in the container.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import load_edge

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "systemd" / "install.sh"
UNINSTALL = ROOT / "systemd" / "uninstall.sh"
SYSTEM = Path("etc/systemd/system")
ENV = {**os.environ, "PIP_NO_DEPS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=ENV, check=False)


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run(INSTALL, "--root", str(root), "--no-apt", "--python", sys.executable, *args)
    assert result.returncode == 0, result.stderr
    return result


def target_root(directory: Path) -> Path:
    """An empty system to install into: just this machine's user and group databases."""
    (directory / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        shutil.copy(Path("/etc") / name, directory / "etc" / name)
    return directory


def account(root: Path, database: str, name: str) -> list[str]:
    """The fields of ``name``'s line in root/etc/passwd or root/etc/group."""
    for line in (root / "etc" / database).read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":")
    raise AssertionError(f"{name} not in {database}")


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A headless kiosk installed once for the read-only checks below."""
    root = target_root(tmp_path_factory.mktemp("kiosk"))
    install(root, "--role", "kiosk", "--store", "berlin-01", "--device", "kiosk-07", "--no-browser")
    return root


def test_kiosk_config_is_written_valid_and_private(kiosk: Path) -> None:
    path = kiosk / "etc/touchpoint/edge.toml"
    loaded = load_edge(path, env={})
    assert (loaded.device.store_id, loaded.device.device_id, loaded.device.role) == ("berlin-01", "kiosk-07", "kiosk")
    assert loaded.web.listen == "127.0.0.1:8080"  # where the kiosk browser looks
    assert loaded.outbox.path == "/var/lib/touchpoint/edge.db"  # the units' StateDirectory=
    info = path.stat()
    assert oct(info.st_mode & 0o777) == "0o640" and info.st_uid == 0
    assert str(info.st_gid) == account(kiosk, "group", "touchpoint")[2]


def test_service_user_reaches_serial_and_camera_through_groups(kiosk: Path) -> None:
    user = account(kiosk, "passwd", "touchpoint")
    assert user[5] == "/var/lib/touchpoint" and user[6] == "/usr/sbin/nologin" and int(user[2]) < 1000
    for group in ("dialout", "video"):
        assert "touchpoint" in account(kiosk, "group", group)[3].split(",")


def test_code_units_and_drivers_land_and_are_enabled(kiosk: Path) -> None:
    assert os.access(kiosk / "opt/touchpoint/bin/touchpoint", os.X_OK)
    for unit in ("touchpoint-edge.service", "touchpoint-sync.service"):
        assert filecmp.cmp(kiosk / SYSTEM / unit, ROOT / "systemd" / unit, shallow=False)
        assert (kiosk / SYSTEM / "multi-user.target.wants" / unit).is_symlink()
    assert not (kiosk / SYSTEM / "touchpoint-kiosk-browser.service").exists()  # --no-browser
    with pytest.raises(AssertionError):
        account(kiosk, "passwd", "touchpoint-kiosk")
    assert (kiosk / "etc/modules-load.d/touchpoint.conf").read_text().split() == ["usbserial", "cdc_acm"]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--store", "Berlin_01", "--device", "m-1", "--role", "mirror"], "--store 'Berlin_01' is not allowed"),
        (["--store", "b-1", "--device", "x" * 65, "--role", "mirror"], "--device"),
        (["--store", "b-1", "--device", "m-1", "--role", "tv"], "--role 'tv' is not allowed"),
        (["--store", "b-1", "--device", "m-1"], "needs --role, --store and --device"),
        (["--package", "/no/such.whl"], "--package /no/such.whl: no such file"),
        (["--colour", "red"], "unknown option --colour"),
    ],
)
def test_bad_input_changes_nothing(tmp_path: Path, args: list[str], complaint: str) -> None:
    root = target_root(tmp_path / "root")
    before = (root / "etc/passwd").read_text()
    result = run(INSTALL, "--root", str(root), "--no-apt", *args)
    assert result.returncode == 2 and complaint in result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["etc"]
    assert (root / "etc/passwd").read_text() == before


def test_reinstall_upgrades_keeps_config_then_uninstall_keeps_data_until_purge(tmp_path: Path) -> None:
    root = target_root(tmp_path / "root")
    install(root, "--role", "mirror", "--store", "hamburg-02", "--device", "mirror-03")
    assert (root / SYSTEM / "touchpoint-edge.service.wants/touchpoint-kiosk-browser.service").is_symlink()
    assert account(root, "passwd", "touchpoint-kiosk")[5] == "/var/lib/touchpoint-kiosk"
    config = root / "etc/touchpoint/edge.toml"
    config.write_text(config.read_text().replace('url = "mqtt://127.0.0.1:1883"', 'url = "mqtts://hq.example:8883"'))
    (root / SYSTEM / "touchpoint-edge.service").write_text("[Service]\nExecStart=/bin/old\n")
    user = account(root, "passwd", "touchpoint")

    again = install(root)  # no ids needed: the config is there
    assert "kept /etc/touchpoint/edge.toml" in again.stdout
    assert load_edge(config, env={}).mqtt.url == "mqtts://hq.example:8883"
    assert filecmp.cmp(
        root / SYSTEM / "touchpoint-edge.service", ROOT / "systemd/touchpoint-edge.service", shallow=False
    )
    assert account(root, "passwd", "touchpoint") == user  # the same user, not a second one

    outbox = root / "var/lib/touchpoint/edge.db"
    outbox.parent.mkdir(parents=True)
    outbox.write_bytes(b"events HQ has not acknowledged")
    removed = run(UNINSTALL, "--root", str(root))
    assert removed.returncode == 0, removed.stderr
    assert not (root / "opt/touchpoint").exists()
    assert not list((root / SYSTEM).rglob("touchpoint*"))
    assert outbox.read_bytes() == b"events HQ has not acknowledged" and config.exists()
    assert account(root, "passwd", "touchpoint")

    purged = run(UNINSTALL, "--root", str(root), "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not outbox.parent.exists() and not config.parent.exists()
    assert not re.search(r"^touchpoint", (root / "etc/passwd").read_text() + (root / "etc/group").read_text(), re.M)


@pytest.mark.parametrize("script", [INSTALL, UNINSTALL])
def test_help_documents_every_option(script: Path) -> None:
    result = run(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith("Usage:")
    options = re.findall(r"^\s+(--[a-z-]+)(?:\|-h)?\)", script.read_text(), re.M)
    assert options
    for option in options:
        assert option in result.stdout, f"{script.name}: {option} is not in --help"


def test_scripts_are_shellcheck_clean() -> None:
    scripts = [INSTALL, UNINSTALL, ROOT / "dev", *sorted((ROOT / "tests" / "system").glob("*.sh"))]
    result = subprocess.run(
        ["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
