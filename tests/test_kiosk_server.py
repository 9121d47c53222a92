"""``touchpoint edge`` as systemd runs it: ready when listening, watchdog pings, clean SIGTERM,
and a clear message instead of a traceback when the catalogue is bad."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from touchpoint.services import free_port

TOUCHPOINT = str(Path(sys.executable).parent / "touchpoint")


def write_config(tmp_path: Path, port: int, catalog: str = "") -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[device]\nstore_id = "s1"\ndevice_id = "kiosk-1"\nrole = "kiosk"\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\nthreads = 4\n[catalog]\npath = "{catalog}"\n'
        f'[outbox]\npath = "{tmp_path / "edge.db"}"\n[log]\nformat = "text"\n',
        encoding="utf-8",
    )
    return path


def test_ready_watchdog_and_clean_sigterm(tmp_path: Path) -> None:
    port = free_port()
    notify_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "400000"}
        command = [TOUCHPOINT, "edge", "--config", str(write_config(tmp_path, port))]
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as edge:
            try:
                messages = [notify.recv(4096).decode()]
                assert messages[0].startswith("READY=1\nSTATUS=serving http://127.0.0.1:")
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    assert json.loads(response.read())["components"]["reader"] == "absent"
                messages.append(notify.recv(4096).decode())
                assert messages[-1] == "WATCHDOG=1"
                edge.send_signal(signal.SIGTERM)
                while messages[-1] != "STOPPING=1":
                    messages.append(notify.recv(4096).decode())
                output, _ = edge.communicate(timeout=20)
            finally:
                edge.kill()  # a no-op once it has exited; Popen's exit closes the pipe and reaps it
    assert edge.returncode == 0, output
    assert f"Touchpoint edge (kiosk) at http://127.0.0.1:{port}/" in output and "Traceback" not in output


def test_a_bad_catalogue_stops_start_up_with_the_row_named(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.json"
    bad.write_text(json.dumps({"version": "1", "products": [{"gtin": "123"}]}), encoding="utf-8")
    result = subprocess.run(
        [TOUCHPOINT, "edge", "--config", str(write_config(tmp_path, free_port(), str(bad)))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "products[0].gtin" in result.stderr and "Traceback" not in result.stderr
