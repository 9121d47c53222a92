"""``touchpoint demo``: the system on one machine, for a newcomer.

The demo is a list of components started in order and stopped in reverse. Today: a simulated
M100 reader playing the fitting-room scenario on a pseudo-terminal, and a mirror (the edge app)
reading it. The broker, HQ, the sync agent and a kiosk join the list as further components.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Protocol

from drivers import scenario
from drivers.simulator import Simulator
from kiosk.server import EdgeServer
from touchpoint import config as configuration
from touchpoint import logs

log = logging.getLogger(__name__)

STAFF_PIN = "4711"
MIRROR_ZONE = "cabin-1"


class Component(Protocol):
    """One running part of the demo; ``start`` returns lines telling the user where to look."""

    name: str

    def start(self) -> list[str]: ...

    def stop(self) -> None: ...


@dataclass
class SimulatedReader:
    """An M100 reader on a pty, playing the built-in fitting-room scenario in a loop."""

    name: str = "simulated reader"
    simulator: Simulator = field(default_factory=lambda: Simulator("m100", rate=20, noise=0.01))

    @property
    def path(self) -> str:
        return self.simulator.path

    def start(self) -> list[str]:
        self.simulator.start(scenario.load("fitting-room", "m100"), loop=True)
        return [f"reader   M100 simulator on {self.path}, fitting-room scenario (shoppers come and go)"]

    def stop(self) -> None:
        self.simulator.close()


@dataclass
class Mirror:
    """The edge app as a fitting-room mirror, configured by a TOML file in the workdir."""

    config_path: Path
    name: str = "mirror"
    server: EdgeServer | None = None

    def start(self) -> list[str]:
        config = configuration.load_edge(self.config_path)
        logs.configure(config.log.level, config.log.format)
        self.server = EdgeServer(config)
        url = self.server.start()
        return [
            f"mirror   {url}   the cabin's screen ({config.device.store_id}/{config.device.device_id})",
            f"staff    {url}staff   PIN {config.staff.pin}",
            f"metrics  {url}metrics   health {url}healthz",
        ]

    def stop(self) -> None:
        if self.server:
            self.server.stop()


def mirror_config(workdir: Path, reader_path: str, port: int) -> str:
    """The demo mirror's config file; every key can still be overridden by TOUCHPOINT_* variables."""
    return f"""# Written by `touchpoint demo`; rewritten on every start.
[device]
store_id = "demo-store"
device_id = "mirror-01"
role = "mirror"

[web]
listen = "127.0.0.1:{port}"
threads = 16

[reader]
protocol = "m100"
url = "{reader_path}"
zone = "{MIRROR_ZONE}"
departure_s = 3.0

[outbox]
path = "{workdir / 'edge.db'}"

[session]
cabin_empty_s = 10

[staff]
pin = "{STAFF_PIN}"

[log]
level = "warning"
format = "text"
"""


def prepare(workdir: Path, fresh: bool) -> None:
    """Create the workdir; ``fresh`` forgets the previous run's databases."""
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)


def run(workdir: str | Path, fresh: bool, port: int) -> int:
    """Start every component, print where to look, run until Ctrl-C or SIGTERM; returns the exit code."""
    root = Path(workdir).resolve()
    prepare(root, fresh)
    reader = SimulatedReader()
    config_path = root / "mirror.toml"
    config_path.write_text(mirror_config(root, reader.path, port), encoding="utf-8")
    components: list[Component] = [reader, Mirror(config_path)]
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    started: list[Component] = []
    try:
        print(f"Touchpoint demo in {root}", flush=True)
        for component in components:
            lines = component.start()
            started.append(component)
            for line in lines:
                print("  " + line, flush=True)
        print("Ctrl-C stops everything.", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    except Exception as error:  # a component that fails to start: stop the others, say why
        print(f"demo: {type(error).__name__}: {error}", flush=True)
        return 1
    finally:
        for component in reversed(started):
            component.stop()
        if reader not in started:
            reader.stop()  # the pty exists from construction on
        signal.signal(signal.SIGTERM, previous)
    print("demo stopped", flush=True)
    return 0
