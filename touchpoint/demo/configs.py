"""The demo's ports and generated config files: one ``hq.toml`` and one TOML per edge device.

Configs are rewritten on every start (the simulated readers' pseudo-terminals change); the HQ
tokens are kept across runs, so a web shop set up against one run keeps working in the next.
"""

from __future__ import annotations

import errno
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from common import config as configuration
from common.errors import ConfigError, TouchpointError
from contract import acks

STORE = "demo-store"
STAFF_PIN = "4711"
DASHBOARD_USER = "demo"
DASHBOARD_PASSWORD = "touchpoint-demo"  # hq.users wants 10 characters or more
CHANNELS = ("web", "app", "pos")


class PortError(TouchpointError, OSError):
    """A port the demo needs is taken; the message says which and what to do."""


@dataclass(frozen=True)
class Ports:
    """Consecutive ports from ``--port``: mirror, kiosk, HQ, broker."""

    mirror: int
    kiosk: int
    hq: int
    broker: int

    @classmethod
    def starting_at(cls, first: int) -> Ports:
        return cls(first, first + 1, first + 2, first + 3)

    def all(self) -> tuple[tuple[str, int], ...]:
        return (("mirror", self.mirror), ("kiosk", self.kiosk), ("HQ", self.hq), ("broker", self.broker))


def check_free(ports: Ports, host: str = "127.0.0.1") -> None:
    """Raise PortError naming the first port something else listens on."""
    for name, port in ports.all():
        if not 0 < port < 65536:
            raise PortError(f"port {port} for the {name} is out of range; choose --port below {65536 - 4}")
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no owner
            try:
                sock.bind((host, port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                raise PortError(
                    f"port {port} (for the {name}) is taken; the demo needs {ports.mirror} to {ports.broker}: "
                    f"stop what uses it or choose other ports with --port"
                ) from None


@dataclass(frozen=True)
class Device:
    """One simulated edge device: its name, role, reader protocol and zone."""

    device_id: str
    role: str
    protocol: str
    zone: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def devices(ports: Ports) -> tuple[Device, Device]:
    """The demo's two devices: a fitting-room mirror (UHF, M100) and a kiosk (125 kHz pad, RDM6300)."""
    return (
        Device("mirror-01", "mirror", "m100", "cabin-1", ports.mirror),
        Device("kiosk-01", "kiosk", "rdm6300", "pad-1", ports.kiosk),
    )


def mqtt_section(url: str, embedded: bool) -> str:
    protocol = "3.1.1" if embedded else "5"  # amqtt speaks 3.1.1 only
    return f'[mqtt]\nurl = "{url}"\nprotocol = "{protocol}"\nack_timeout_s = 10\n'


def edge_toml(workdir: Path, device: Device, reader_path: str, mqtt_url: str, embedded: bool, ack_key: str) -> str:
    """A device's config, shared by its ``touchpoint edge`` and ``touchpoint sync`` processes; ``ack_key``
    is the device's key under HQ's ack secret (:func:`device_ack_key`)."""
    return f"""# Written by `touchpoint demo`; rewritten on every start.
[device]
store_id = "{STORE}"
device_id = "{device.device_id}"
role = "{device.role}"

[web]
listen = "127.0.0.1:{device.port}"
threads = 16

[reader]
protocol = "{device.protocol}"
url = "{reader_path}"
zone = "{device.zone}"
departure_s = 3.0

[outbox]
path = "{workdir / (device.device_id + ".db")}"

[session]
cabin_empty_s = 10
kiosk_idle_s = 20

[staff]
pin = "{STAFF_PIN}"

{mqtt_section(mqtt_url, embedded)}ack_key = "{ack_key}"

[log]
level = "info"
format = "text"
"""


def device_ack_key(secrets_: Secrets, device: Device) -> str:
    """The key ``device`` checks HQ's acks with, as ``touchpoint hq device-key`` would print it."""
    return acks.device_key(secrets_.ack_secret, STORE, device.device_id)


def hq_toml(workdir: Path, port: int, mqtt_url: str, embedded: bool, secrets_: Secrets, password_hash: str) -> str:
    """HQ on SQLite in the workdir; without shared subscriptions (amqtt) one worker and no group."""
    token_lines = "".join(f'{channel} = "{token}"\n' for channel, token in secrets_.tokens.items())
    share_group = '""' if embedded else '"touchpoint-hq"'
    return f"""# Written by `touchpoint demo`; rewritten on every start (tokens are kept).
[web]
listen = "127.0.0.1:{port}"
threads = 16

{mqtt_section(mqtt_url, embedded)}
[database]
url = "sqlite:///{workdir / "hq.db"}"

[hq]
api_token = "{secrets_.api_token}"
secret_key = "{secrets_.secret_key}"
ack_secret = "{secrets_.ack_secret}"
workers = 1
share_group = {share_group}

[hq.tokens]
{token_lines}
[hq.users]
{DASHBOARD_USER} = "{password_hash}"

[log]
level = "info"
format = "text"
"""


@dataclass(frozen=True)
class Secrets:
    """HQ's bearer tokens: one per digital channel for ``POST /v1/events``, one for the read API."""

    tokens: dict[str, str]
    api_token: str
    secret_key: str  # signs dashboard sessions, so a login outlives a restart of the demo
    ack_secret: str  # signs HQ's acks; each device's ack_key derives from it


def kept_secrets(hq_path: Path) -> Secrets:
    """The tokens of a previous run's ``hq.toml``, else new random ones."""
    if hq_path.exists():
        try:
            kept = configuration.load_hq(hq_path, env={}).hq
        except ConfigError:
            kept = None
        if (
            kept
            and kept.api_token
            and kept.secret_key
            and kept.ack_secret
            and all(kept.tokens.get(c) for c in CHANNELS)
        ):
            tokens = {channel: kept.tokens[channel] for channel in CHANNELS}
            return Secrets(tokens, kept.api_token, kept.secret_key, kept.ack_secret)
    return Secrets(
        {channel: secrets.token_urlsafe(18) for channel in CHANNELS},
        secrets.token_urlsafe(18),
        secrets.token_hex(32),
        secrets.token_hex(32),
    )
