"""``touchpoint demo``: start the parts in order, show where to look, stop them in reverse.

HQ, the edges and the sync agents run as real ``touchpoint`` subprocesses with generated configs
in the workdir, as in production: each has its own signal handling, systemd-style shutdown and
log file, and a crash of one shows up as that process's exit instead of taking the demo down.
The readers, the web shop and the shoppers are simulations and run as threads in this process.
"""

from __future__ import annotations

import functools
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from werkzeug.security import generate_password_hash

from common import logs
from touchpoint.demo import configs
from touchpoint.demo.components import (
    Child,
    Component,
    DemoError,
    MosquittoBroker,
    SimulatedReader,
    embedded_broker,
    http_ok,
    mosquitto_installed,
    sync_connected,
    touchpoint_command,
)
from touchpoint.demo.shoppers import CUSTOMERS, Shoppers
from touchpoint.demo.webshop import EventPoster

BROKERS = ("auto", "mosquitto", "embedded")
READY_TIMEOUT_S = 60.0
SUPERVISE_S = 1.0


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived."""


def prepare(workdir: Path, fresh: bool) -> None:
    """Create the workdir; ``fresh`` forgets the previous run's databases."""
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "logs").mkdir(parents=True, exist_ok=True)


def tick() -> str:
    """A check mark where the terminal can print one."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓".encode(encoding)
    except UnicodeEncodeError:
        return "ok"
    return "✓"


def say(line: str) -> None:
    print(line, flush=True)


def run(workdir: str | Path, fresh: bool, port: int, broker: str = "auto") -> int:
    """Start every part, print the URLs, run until Ctrl-C or SIGTERM; returns the exit code."""
    if broker not in BROKERS:
        raise ValueError(f"broker {broker!r}: one of {', '.join(BROKERS)}")
    root = Path(workdir).resolve()
    ports = configs.Ports.starting_at(port)
    try:
        configs.check_free(ports)
    except configs.PortError as error:
        say(f"demo: {error}")
        return 1
    if broker == "mosquitto" and not mosquitto_installed():
        say("demo: --broker mosquitto, but Mosquitto is not installed (Debian: apt-get install mosquitto)")
        return 1
    embedded = broker == "embedded" or (broker == "auto" and not mosquitto_installed())
    prepare(root, fresh)
    logs.configure("warning", "text")

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    for sig in previous:
        signal.signal(sig, interrupt)
    started: list[Component] = []
    code = 0
    try:
        code = _start_and_supervise(root, ports, embedded, started)
    except Interrupted:
        pass
    except (DemoError, OSError) as error:
        say(f"demo: {error}")
        code = 1
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the orderly stop short
            signal.signal(sig, signal.SIG_IGN)
        say("stopping ...")
        for component in started:  # edges and sync agents stop side by side, then the rest in reverse
            if isinstance(component, Child) and component.peers:
                component.terminate()
        for component in reversed(started):
            component.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("demo stopped")
    return code


def _start_and_supervise(root: Path, ports: configs.Ports, embedded: bool, started: list[Component]) -> int:
    mark = tick()
    mirror, kiosk = devices = configs.devices(ports)
    readers = {device.device_id: SimulatedReader(device.device_id, device.protocol) for device in devices}
    started.extend(readers.values())  # the ptys exist from construction on; close them however we end
    broker = (
        embedded_broker(ports.broker, root / "logs" / "broker.log")
        if embedded
        else MosquittoBroker(ports.broker, root / "mosquitto")
    )
    mqtt_url = f"mqtt://127.0.0.1:{ports.broker}"
    broker_text = (
        broker.description if isinstance(broker, MosquittoBroker) else f"amqtt (embedded) on {mqtt_url} (MQTT 3.1.1)"
    )
    say(f"Touchpoint demo in {root} ({'fresh start' if not (root / 'hq.db').exists() else 'continuing'})")

    hq_path = root / "hq.toml"
    secrets = configs.kept_secrets(hq_path)
    hq_path.write_text(
        configs.hq_toml(
            root, ports.hq, mqtt_url, embedded, secrets, generate_password_hash(configs.DASHBOARD_PASSWORD)
        ),
        encoding="utf-8",
    )
    hq_url = f"http://127.0.0.1:{ports.hq}/"
    children: list[tuple[Child, str]] = [
        (
            Child(
                "hq",
                [*touchpoint_command(), "hq", "--config", str(hq_path)],
                root / "logs" / "hq.log",
                lambda: http_ok(hq_url + "healthz"),
            ),
            f"HQ on SQLite, {hq_url}",
        )
    ]
    launched_at = time.time()
    for device in devices:
        config_path = root / f"{device.device_id}.toml"
        config_path.write_text(
            configs.edge_toml(
                root,
                device,
                readers[device.device_id].path,
                mqtt_url,
                embedded,
                configs.device_ack_key(secrets, device),
            ),
            encoding="utf-8",
        )
        edge = Child(
            f"{device.device_id} edge",
            [*touchpoint_command(), "edge", "--config", str(config_path)],
            root / "logs" / f"{device.device_id}-edge.log",
            functools.partial(http_ok, device.url + "healthz"),
            peers=True,
        )
        agent = Child(
            f"{device.device_id} sync",
            [*touchpoint_command(), "sync", "--config", str(config_path)],
            root / "logs" / f"{device.device_id}-sync.log",
            sync_connected(root / f"{device.device_id}.db", launched_at),
            peers=True,
        )
        children += [(edge, f"{device.role} {device.url}"), (agent, "sync agent connected to the broker")]

    for reader in readers.values():
        reader.launch()
        say(f"  {mark} {reader.name:<15} {reader.description}")
    begun = time.monotonic()
    started.append(broker)
    broker.launch()
    broker.wait_ready(READY_TIMEOUT_S)
    say(f"  {mark} {'broker':<15} {broker_text} ({time.monotonic() - begun:.1f} s)")
    for child, _ in children:
        started.append(child)
        child.launch()
    for child, text in children:
        child.wait_ready(READY_TIMEOUT_S)
        say(f"  {mark} {child.name:<15} {text} ({time.monotonic() - begun:.1f} s)")
    shoppers = Shoppers(devices, EventPoster(hq_url, secrets.tokens))
    started.append(shoppers)
    say(f"  {mark} {'shoppers':<15} {shoppers.start()}")

    say("")
    say("Touchpoint demo is running:")
    say(f"  mirror      {mirror.url}   the fitting-room mirror ({configs.STORE}/{mirror.device_id})")
    say(f"  kiosk       {kiosk.url}   the shop-floor kiosk ({configs.STORE}/{kiosk.device_id})")
    say(f"  staff       {mirror.url}staff  {kiosk.url}staff   PIN {configs.STAFF_PIN}")
    say(f"  HQ          {hq_url}   dashboard, login {configs.DASHBOARD_USER} / {configs.DASHBOARD_PASSWORD}")
    say(f"  HQ API      curl -H 'Authorization: Bearer {secrets.api_token}' {hq_url}v1/devices   fleet status")
    say(f"  tokens      for POST /v1/events and the API in {hq_path}")
    say(
        f"  journey     curl -H 'Authorization: Bearer {secrets.api_token}' {hq_url}v1/customers/{CUSTOMERS[0]}/journey"
    )
    say(f"  logs        {root / 'logs'}")
    say("Ctrl-C stops everything.")
    return _supervise(started)


def _supervise(started: list[Component]) -> int:
    """Wait for a signal; a part that ends on its own ends the demo (exit 1) with its log's tail."""
    while True:
        time.sleep(SUPERVISE_S)
        for component in started:
            code = component.exited()
            if code is not None:
                tail = component.tail() if isinstance(component, Child) else ""
                say(f"demo: {component.name} exited with {code}; stopping the others\n{tail}")
                return 1
    return 0
