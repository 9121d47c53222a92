"""Configuration: a TOML file, every key overridable by ``TOUCHPOINT_{SECTION}_{KEY}``.

Each section is a frozen dataclass; its fields are the allowed keys, their defaults and (in
``metadata``) their checks. Loading validates everything at start-up, so a wrong key or value
stops the process with a :class:`ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from common.config_checks import (
    at_least,
    between,
    checked,
    client_id_prefix,
    database_url,
    hex_key,
    identifier,
    mqtt_url,
    one_of,
    pin,
    port_floors,
    port_zones,
    required,
    table,
    trait_keys,
    web_url,
)
from common.config_web import IntakeSection, WebSection
from common.errors import ConfigError

ENV_PREFIX = "TOUCHPOINT"


@dataclass(frozen=True)
class DeviceSection:
    store_id: str = required(identifier, "the store this device stands in")
    device_id: str = required(identifier, "unique within the store")
    role: str = checked("mirror", one_of("mirror", "kiosk"), "which screen `/` shows")


READER_PROTOCOLS = ("m100", "mercury", "llrp", "id12", "rdm6300")
MULTI_ANTENNA = ("mercury", "llrp")
REGIONS = ("eu", "na", "in", "jp", "prc", "kr", "au", "nz")


@dataclass(frozen=True)
class ReaderSection:
    """One reader: ``[reader]``, or each ``[[readers]]`` entry (environment: TOUCHPOINT_READERS_{N}_{KEY})."""

    protocol: str = required(one_of(*READER_PROTOCOLS), "the reader's protocol")
    url: str = required(None, "a pyserial URL (/dev/ttyUSB0, loop://, socket://host:port); llrp: HOST[:PORT]")
    zone: str = checked("zone-1", identifier, "the zone this reader covers, e.g. cabin-1")
    zones: dict[str, str] = table("mercury, llrp: antenna port = zone; reads of other ports are ignored", port_zones)
    departure_s: float = checked(3.0, at_least(0.1), "seconds without a read before a tag departs")
    baudrate: int = checked(0, at_least(0), "0 means the protocol's default")
    min_rssi: int = checked(-80, between(-128, 0), "dBm; weaker reads are ignored (touchpoint doctor --calibrate)")
    port_min_rssi: dict[str, str] = table("antenna port = its own min_rssi, e.g. {2 = -58}", port_floors)
    min_reads: int = checked(2, at_least(1), "reads within arrival_window_s before a tag arrives")
    arrival_window_s: float = checked(1.0, at_least(0.1), "seconds in which min_reads must come")
    region: str = checked("eu", one_of(*REGIONS), "mercury: the regulatory region the module transmits in")

    def port_zone(self, port: int | None) -> str | None:
        """The zone of a read from ``port`` (None: a reader without ports); None when unmapped."""
        if not self.zones:
            return self.zone
        return self.zones.get(str(port)) if port is not None else None

    def floor(self, port: int | None) -> int:
        """The RSSI floor of ``port``."""
        return int(self.port_min_rssi.get(str(port), self.min_rssi))

    def covered_zones(self) -> list[str]:
        return list(dict.fromkeys(self.zones.values())) if self.zones else [self.zone]


@dataclass(frozen=True)
class PresenceSection:
    margin_db: float = checked(6.0, at_least(0), "how much louder another zone must hear a tag to take it")
    hold_s: float = checked(2.0, at_least(0), "how long that lead must last before the tag moves")


@dataclass(frozen=True)
class CameraSection:
    source: str = checked("0", None, "camera index, video file or folder of images")
    fps: float = checked(5.0, at_least(0.5), "frames decoded per second")


@dataclass(frozen=True)
class CatalogSection:
    path: str = checked("", None, "catalogue JSON; empty means the bundled sample catalogue")


@dataclass(frozen=True)
class OutboxSection:
    path: str = checked("/var/lib/touchpoint/edge.db", None, "SQLite file shared with the sync agent")
    capacity: int = checked(
        1_000_000, at_least(1000), "events kept unacknowledged; beyond, new events are refused and counted"
    )


@dataclass(frozen=True)
class SessionSection:
    kiosk_idle_s: float = checked(60.0, at_least(5), "a kiosk session ends after this long untouched")
    cabin_empty_s: float = checked(120.0, at_least(5), "a cabin session ends after the cabin is empty this long")
    survey: str = checked("nps", one_of("nps", "csat", "none"), "question asked when a session ends")


@dataclass(frozen=True)
class StaffSection:
    pin: str = checked("", lambda v: None if v == "" else pin(v), "PIN for /staff; empty disables the staff screen")


@dataclass(frozen=True)
class MqttSection:
    url: str = checked("mqtt://127.0.0.1:1883", mqtt_url, "broker; mqtts:// for TLS")
    protocol: str = checked("5", one_of("5", "3.1.1"), "MQTT protocol version")
    username: str = checked("", None, "broker login; production gives each device its own")
    password: str = checked("", None, "broker password")
    ca_file: str = checked("", None, "CA certificate for mqtts://")
    cert_file: str = checked("", None, "client certificate (optional)")
    key_file: str = checked("", None, "client key (optional)")
    keepalive_s: int = checked(30, at_least(5), "MQTT keep-alive; a dead link is noticed after 1.5 times this")
    session_expiry_s: int = checked(7 * 24 * 3600, at_least(0), "how long the broker keeps our session")
    batch_events: int = checked(500, at_least(1), "most events in one published batch")
    batch_bytes: int = checked(256 * 1024, at_least(1024), "most bytes in one published batch")
    inflight_batches: int = checked(8, at_least(1), "batches published and not yet acknowledged by HQ")
    ack_timeout_s: float = checked(20.0, at_least(1), "resend what HQ has not acknowledged after this long")
    ack_key: str = checked("", hex_key, "edge: this device's key for HQ's signed acks (touchpoint hq device-key)")
    ack_key_previous: str = checked("", hex_key, "edge: the key before a rotation, accepted too until removed")


@dataclass(frozen=True)
class DatabaseSection:
    url: str = checked("sqlite:////var/lib/touchpoint/hq.db", database_url, "HQ storage")


@dataclass(frozen=True)
class HqSection:
    tokens: dict[str, str] = table("bearer token per channel for POST /v1/events")
    users: dict[str, str] = table("dashboard users: name = password hash (touchpoint hq add-user)")
    api_token: str = checked("", None, "bearer token for the read and erasure API; empty: dashboard login only")
    secret_key: str = checked("", None, "signs dashboard sessions; empty: random per start (logins end on restart)")
    ack_secret: str = checked(
        "",
        lambda v: None if v == "" or len(v) >= 32 else "at least 32 characters",
        "signs every ack; each device's ack_key derives from it; required by the ingest role",
    )
    catalog: str = checked("", None, "catalogue JSON for recommendations; empty means the bundled sample")
    recompute_interval_s: int = checked(3600, at_least(0), "seconds between recommendation publishes; 0 = off")
    workers: int = checked(1, at_least(1), "ingest workers sharing the MQTT subscription")
    client_id: str = checked(
        "",
        client_id_prefix,
        "ingest: worker N connects as CLIENT_ID-N, one CLIENT_ID per process; empty: hq-HOSTNAME",
    )
    report_wait_s: float = checked(
        2.0,
        between(0, 60),
        "seconds a touchpoint report request waits for its computation before the answer is "
        "'computing' (the API's 202 with Retry-After, the dashboard's reloading page)",
    )
    handoff_url: str = checked(
        "https://touchpoint.example/h/",
        lambda v: None if v == "" else web_url(v),
        "the edges' [web] handoff_url: a Segment page at it plus a token redeems that hand-off; empty = never",
    )
    traits: str = checked(
        "",
        trait_keys,
        "Segment identify/group traits kept, comma-separated (e.g. preferred_size); the rest is never stored",
    )
    share_group: str = checked(
        "touchpoint-hq",
        lambda v: None if v == "" else identifier(v),
        "MQTT shared-subscription group of all ingest workers; empty for a broker "
        "without shared subscriptions (amqtt), with one worker in all",
    )


@dataclass(frozen=True)
class LogSection:
    level: str = checked("info", one_of("debug", "info", "warning", "error"), "least severe level logged")
    format: str = checked("auto", one_of("auto", "json", "text"), "auto: text on a terminal, else JSON")


@dataclass(frozen=True)
class EdgeConfig:
    device: DeviceSection
    web: WebSection
    reader: ReaderSection | None
    readers: tuple[ReaderSection, ...]
    presence: PresenceSection
    camera: CameraSection | None
    catalog: CatalogSection
    outbox: OutboxSection
    session: SessionSection
    staff: StaffSection
    mqtt: MqttSection
    log: LogSection

    def __post_init__(self) -> None:
        check_readers(self.reader, self.readers)

    @property
    def all_readers(self) -> tuple[ReaderSection, ...]:
        """``[reader]`` or the ``[[readers]]``, whichever the device has."""
        return (self.reader,) if self.reader else self.readers

    @property
    def zones(self) -> list[str]:
        """Every zone the readers cover, the first reader's first; ``screen`` for a device without."""
        zones = [zone for reader in self.all_readers for zone in reader.covered_zones()]
        return list(dict.fromkeys(zones)) or ["screen"]

    @property
    def source(self) -> str:
        """The CloudEvents ``source`` of every event this device emits."""
        return f"/stores/{self.device.store_id}/devices/{self.device.device_id}"


def check_readers(reader: ReaderSection | None, readers: tuple[ReaderSection, ...]) -> None:
    """What no single key shows: one way of listing readers, ports only where there are ports, one
    set of arrival rules per zone. Raises ConfigError naming the key."""
    if reader is not None and readers:
        raise ConfigError("readers", f"{len(readers)} tables", "either one [reader] or [[readers]] tables, not both")
    named = [("reader", reader)] if reader else [(f"readers[{n}]", r) for n, r in enumerate(readers, 1)]
    rules: dict[str, tuple[str, tuple[float, ...]]] = {}
    for key, section in named:
        for ports in ("zones", "port_min_rssi"):
            if getattr(section, ports) and section.protocol not in MULTI_ANTENNA:
                raise ConfigError(f"{key}.{ports}", getattr(section, ports), "ports only on mercury and llrp readers")
        mine = (section.min_reads, section.arrival_window_s, section.departure_s)
        for zone in section.covered_zones():
            other, theirs = rules.setdefault(zone, (key, mine))
            if theirs != mine:
                raise ConfigError(
                    f"{key}.min_reads",
                    mine,
                    f"min_reads, arrival_window_s, departure_s as {other}, which covers {zone}",
                )


@dataclass(frozen=True)
class HqConfig:
    web: WebSection
    mqtt: MqttSection
    database: DatabaseSection
    hq: HqSection
    intake: IntakeSection
    log: LogSection


def load_edge(path: str | Path | None, env: Mapping[str, str] | None = None) -> EdgeConfig:
    """Read an edge device's config; raises ConfigError on any bad key or value."""
    return _load(EdgeConfig, path, os.environ if env is None else env)


def load_hq(path: str | Path | None, env: Mapping[str, str] | None = None) -> HqConfig:
    """Read the HQ service's config; raises ConfigError on any bad key or value."""
    return _load(HqConfig, path, os.environ if env is None else env)


def from_dict(kind: type, document: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Any:
    """Build ``EdgeConfig`` or ``HqConfig`` from an already-parsed document (tests, demo)."""
    return _build(kind, document, {} if env is None else env)


def _load(kind: type, path: str | Path | None, env: Mapping[str, str]) -> Any:
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("--config", str(path), "an existing TOML file") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError("--config", str(path), f"valid TOML ({error})") from None
    return _build(kind, document, env)


def _build(kind: type, document: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    hints = get_type_hints(kind)
    unknown = set(document) - set(hints)
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(name, document[name], "sections " + ", ".join(hints))
    sections: dict[str, Any] = {}
    for name, hint in hints.items():
        section_type, optional = _unwrap_optional(hint)
        if get_origin(section_type) is tuple:
            sections[name] = _build_array(name, get_args(section_type)[0], document.get(name, []), env)
            continue
        table = document.get(name)
        overridden = any(key.startswith(f"{ENV_PREFIX}_{name.upper()}_") for key in env)
        if table is None and optional and not overridden:
            sections[name] = None
            continue
        if table is not None and not isinstance(table, Mapping):
            raise ConfigError(name, table, "a table")
        sections[name] = _build_section(name, section_type, table or {}, env)
    return kind(**sections)


def _build_array(name: str, kind: type, tables: Any, env: Mapping[str, str]) -> tuple[Any, ...]:
    """``[[name]]`` tables, numbered from 1 in errors (``readers[2].url``) and variables (TOUCHPOINT_READERS_2_URL)."""
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise ConfigError(name, tables, f"an array of tables ([[{name}]])")
    prefix = f"{ENV_PREFIX}_{name.upper()}_"
    for env_name in [name for name in env if name.startswith(prefix)]:
        number = env_name[len(prefix) :].partition("_")[0]
        if not number.isdigit() or not 1 <= int(number) <= len(tables):
            raise ConfigError(
                env_name, env[env_name], f"{prefix}N_KEY for N from 1 to {len(tables)}, one per [[{name}]]"
            )
    return tuple(_build_section(f"{name}[{n}]", kind, table, env, f"{name}_{n}") for n, table in enumerate(tables, 1))


def _build_section(
    section: str, kind: type, table: Mapping[str, Any], env: Mapping[str, str], env_section: str = ""
) -> Any:
    hints = get_type_hints(kind)
    unknown = set(table) - set(hints)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"{section}.{key}", table[key], "keys " + ", ".join(hints))
    env_section = (env_section or section).upper()
    known_env = {f"{ENV_PREFIX}_{env_section}_{name.upper()}" for name in hints}
    for env_name in env:
        stray = env_name.startswith(f"{ENV_PREFIX}_{env_section}_") and env_name not in known_env
        if stray and not any(env_name.startswith(k + "_") for k in known_env):
            raise ConfigError(env_name, env[env_name], "variables for keys " + ", ".join(hints))
    values = {}
    for spec in dataclasses.fields(kind):
        key = f"{section}.{spec.name}"
        env_name = f"{ENV_PREFIX}_{env_section}_{spec.name.upper()}"
        hint = hints[spec.name]
        if get_origin(hint) is dict:
            given = table.get(spec.name, {})
            if not isinstance(given, Mapping):
                raise ConfigError(key, given, "a table")
            value = {str(k): str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in given.items()}
            prefix = env_name + "_"
            value.update({k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)})
            if not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(key, value, "a table of strings")
        elif env_name in env:
            value = _coerce(key, env[env_name], hint)
        elif spec.name in table:
            value = _coerce(key, table[spec.name], hint)
        elif spec.metadata.get("required"):
            raise ConfigError(key, None, f"a value (set it in the file or in {env_name})")
        else:
            continue
        check = spec.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ConfigError(key, value, problem)
        values[spec.name] = value
    return kind(**values)


def _coerce(key: str, value: Any, hint: type) -> Any:
    """Turn a TOML or environment value into the field's type, or say why not."""
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, value, "true or false")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(key, value, f"a number ({hint.__name__})")
        try:
            number = hint(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, f"a number ({hint.__name__})") from None
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(key, value, "a whole number")
        return number
    if isinstance(value, (Mapping, list)):
        raise ConfigError(key, value, "a string")
    return str(value)


def _unwrap_optional(hint: Any) -> tuple[type, bool]:
    args = get_args(hint)
    if type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def reference(kind: type) -> list[tuple[str, Any, str]]:
    """(key, default, help) for every key of a config kind, for the README and `--help`."""
    rows = []
    for name, hint in get_type_hints(kind).items():
        section_type, _ = _unwrap_optional(hint)
        if get_origin(section_type) is tuple:
            rows.append((f"{name}[N]", "(array)", "several readers: [[readers]] tables with the keys of [reader]"))
            continue
        for spec in dataclasses.fields(section_type):
            default = spec.default if spec.default is not dataclasses.MISSING else "(required)"
            if spec.default_factory is not dataclasses.MISSING:
                default = spec.default_factory()
            rows.append((f"{name}.{spec.name}", default, spec.metadata.get("doc", "")))
    return rows


def reference_markdown(kind: type) -> str:
    """The README's reference table for a config kind: key, environment variable, default, meaning."""
    lines = ["| key | environment | default | meaning |", "| --- | --- | --- | --- |"]
    for key, default, doc in reference(kind):
        section, _, name = key.partition(".")
        env = (
            f"{ENV_PREFIX}_{section.upper()}_{name.upper()}"
            if name
            else f"{ENV_PREFIX}_{section[:-3].upper()}_{{N}}_{{KEY}}"
        )
        if isinstance(default, dict):
            env += "_{NAME}"
            default = "(table)"
        lines.append(f"| `{key}` | `{env}` | `{default!s}` | {doc.replace('|', '/')} |")
    return "\n".join(lines)


__all__ = ["ConfigError", "EdgeConfig", "HqConfig", "load_edge", "load_hq", "from_dict"]
__all__ += ["reference", "reference_markdown"]
