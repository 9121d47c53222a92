"""The demo's parts: the broker, child processes (HQ, edges, sync agents) and simulated readers.

Every part has ``launch()`` (begin, return at once), ``wait_ready(timeout)`` (block until it
serves, raise DemoError with the reason and its log's tail otherwise) and ``stop()``. Child
processes run in their own session, so a Ctrl-C in the terminal reaches only the demo, which
then stops them in reverse order with SIGTERM, as systemd would.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Protocol

from common.errors import TouchpointError
from drivers import scenario
from drivers.simulator import Simulator
from sync import state as sync_state
from touchpoint.services import Mosquitto, ServiceError

POLL_S = 0.1
STOP_TIMEOUT_S = 15.0
LOG_TAIL = 1500


class DemoError(TouchpointError, RuntimeError):
    """A part of the demo did not start; the message says which and why."""


class Component(Protocol):
    """What the demo needs of each running part, to supervise it and stop it."""

    name: str

    def exited(self) -> int | None: ...

    def stop(self) -> None: ...


def touchpoint_command() -> list[str]:
    """The ``touchpoint`` console script of this interpreter, or the CLI module run by it."""
    script = Path(sys.executable).parent / "touchpoint"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from touchpoint.cli import main; main()"]


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 2xx right now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            response.read()
            return True
    except urllib.error.HTTPError as error:  # e.g. 503 while HQ's ingest has not connected yet
        error.close()
        return False
    except (urllib.error.URLError, OSError):
        return False


def sync_connected(outbox_path: Path, since: float) -> Callable[[], bool]:
    """Ready check of a sync agent: its state row says connected, written after ``since``."""

    def check() -> bool:
        found = sync_state.read(outbox_path)
        return found is not None and found.connected and found.updated_at >= since

    return check


class Child:
    """A ``touchpoint`` subprocess with its output in ``log_path``.

    ``peers``: one of several independent processes (the edges and their sync agents) that may be
    told to stop all at once, before what they depend on (HQ, the broker) is stopped in turn.
    """

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, ready: Callable[[], bool], peers: bool = False
    ) -> None:
        self.name = name
        self.peers = peers
        self.argv = list(argv)
        self.log_path = log_path
        self.ready = ready
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop(); one run's output
        self.process = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def wait_ready(self, timeout: float) -> None:
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise DemoError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise DemoError(f"{self.name} was not ready after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(POLL_S)

    def exited(self) -> int | None:
        """The exit code once the process has ended on its own, else None."""
        return None if self.process is None else self.process.poll()

    def tail(self) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return f"  (from {self.log_path})\n" + text[-LOG_TAIL:]

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM) without waiting; ``stop()`` waits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; always reaps the process and closes the log."""
        if self.process is not None:
            if self.process.poll() is None:
                self.terminate()
                try:
                    self.process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


class MosquittoBroker:
    """The installed Mosquitto (touchpoint.services), persisting into the workdir."""

    name = "broker"

    def __init__(self, port: int, workdir: Path) -> None:
        self.broker = Mosquitto(port, workdir=workdir)
        self.description = f"Mosquitto on {self.broker.url} (MQTT 5, shared subscriptions)"

    @property
    def url(self) -> str:
        return self.broker.url

    def launch(self) -> None:
        """Mosquitto's own start waits for the port, so launching is starting."""

    def wait_ready(self, timeout: float) -> None:
        try:
            self.broker.start(timeout)
        except ServiceError as error:
            raise DemoError(f"broker: {error}") from None

    def exited(self) -> int | None:
        process = self.broker.process
        return None if process is None else process.poll()

    def stop(self) -> None:
        self.broker.stop()


def embedded_broker(port: int, log_path: Path) -> Child:
    """amqtt in its own process (touchpoint.broker), for machines without Mosquitto."""
    argv = [sys.executable, "-m", "touchpoint.broker", "--port", str(port)]
    # Its start-up line, rather than a probe connection, which amqtt would log as an error.
    return Child(
        "broker",
        argv,
        log_path,
        lambda: (
            log_path.exists()
            and f"broker on mqtt://127.0.0.1:{port}" in log_path.read_text(encoding="utf-8", errors="replace")
        ),
    )


def mosquitto_installed() -> bool:
    return bool(shutil.which("mosquitto")) or Path("/usr/sbin/mosquitto").exists()


class SimulatedReader:
    """A reader on a pseudo-terminal in this process, playing shoppers' garments in a loop."""

    def __init__(self, device_id: str, protocol: str, seed: int | None = None) -> None:
        self.name = f"{device_id} reader"
        self.simulator = Simulator(protocol, rate=20, noise=0.01, seed=seed)
        self.steps = scenario.fitting_room(scenario.catalogue_tags(protocol), random.Random(seed), shoppers=6)
        kind = "fitting-room scenario" if protocol == "m100" else "garments laid on the pad"
        self.description = f"{protocol.upper()} simulator on {self.simulator.path}, {kind}"

    @property
    def path(self) -> str:
        return self.simulator.path

    def launch(self) -> None:
        self.simulator.start(self.steps, loop=True)

    def wait_ready(self, timeout: float) -> None:
        """Playing from launch on."""

    def exited(self) -> int | None:
        return None

    def stop(self) -> None:
        self.simulator.close()
