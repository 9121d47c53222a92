"""``touchpoint demo`` as a newcomer runs it: starts, serves a live cabin, stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sync.envelope import validate
from sync.outbox import Outbox
from touchpoint.services import free_port


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_demo_starts_serves_a_tag_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    workdir = tmp_path / "demo"
    command = [str(Path(sys.executable).parent / "touchpoint"), "demo", "--workdir", str(workdir),
               "--port", str(port), "--fresh"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as demo:
        try:
            assert demo.stdout is not None
            lines = []
            url = f"http://127.0.0.1:{port}/"
            while not any(url in line for line in lines):
                line = demo.stdout.readline()
                assert line, "demo exited early:\n" + "".join(lines)
                lines.append(line)
            present: list = []
            for _ in range(300):  # the scenario's first shopper walks in about a second after start
                present = get_json(url + "api/presence")["zones"].get("cabin-1", [])
                if present:
                    break
                time.sleep(0.05)
            assert present and present[0]["gtin"].startswith("04012345")
            assert get_json(url + "healthz")["status"] == "ok"
            demo.send_signal(signal.SIGINT)
            output, _ = demo.communicate(timeout=20)
        finally:
            demo.kill()  # a no-op once it has exited; Popen's exit closes the pipe and reaps it
    printed = "".join(lines) + output
    assert demo.returncode == 0, printed
    assert "demo stopped" in output and "Traceback" not in printed
    assert f"{url}staff   PIN 4711" in printed
    box = Outbox(workdir / "edge.db", "/stores/demo-store/devices/mirror-01")
    try:
        stored = [validate(json.loads(p.body)) for p in box.pending(limit=1000)]
    finally:
        box.close()
    assert [e["type"] for e in stored[:2]] == ["touchpoint.session.started", "touchpoint.tag.arrived"]
