"""The checks and field helpers of every config section (``common.config`` loads them).

A check takes the value and returns what is allowed when the value is not, else None; ``checked``,
``table`` and ``required`` declare a section's keys with their defaults, checks and help lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import field
from typing import Any

IDENTIFIER = re.compile(r"[a-z0-9-]{1,64}")
Check = Callable[[Any], str | None]  # returns what is allowed when the value is not


def identifier(value: Any) -> str | None:
    return None if IDENTIFIER.fullmatch(str(value)) else "1 to 64 of a-z, 0-9 and '-'"


def one_of(*choices: str) -> Check:
    return lambda value: None if value in choices else "one of " + ", ".join(choices)


def at_least(minimum: float) -> Check:
    return lambda value: None if value >= minimum else f"a number >= {minimum}"


def between(low: float, high: float) -> Check:
    return lambda value: None if low <= value <= high else f"a number from {low} to {high}"


def port_zones(value: Any) -> str | None:
    """Antenna port -> zone, as ``zones = {1 = "cabin-1", 2 = "cabin-2"}``."""
    ok = all(k.isdigit() and 1 <= int(k) <= 65535 and identifier(v) is None for k, v in value.items())
    return None if ok else 'antenna ports 1..65535 mapped to zone names, e.g. {1 = "cabin-1", 2 = "cabin-2"}'


def port_floors(value: Any) -> str | None:
    """Antenna port -> RSSI floor in dBm, as ``port_min_rssi = {2 = -58}``."""
    ok = all(k.isdigit() and 1 <= int(k) <= 65535 and _is_dbm(v) for k, v in value.items())
    return None if ok else "antenna ports 1..65535 mapped to whole dBm from -128 to 0, e.g. {2 = -58}"


def _is_dbm(value: Any) -> bool:
    text = str(value).strip()
    return text.lstrip("-").isdigit() and -128 <= int(text) <= 0


def host_port(value: Any) -> str | None:
    host, sep, port = str(value).rpartition(":")
    ok = sep and host and port.isdigit() and 0 <= int(port) <= 65535
    return None if ok else "HOST:PORT, e.g. 127.0.0.1:8080"


def mqtt_url(value: Any) -> str | None:
    ok = re.fullmatch(r"mqtts?://[^/:]+(:\d{1,5})?/?", str(value))
    return None if ok else "mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"


def database_url(value: Any) -> str | None:
    ok = str(value).startswith(("sqlite:///", "postgresql://", "postgres://"))
    return None if ok else "sqlite:///PATH or postgresql://USER@HOST/DB"


def web_url(value: Any) -> str | None:
    ok = re.fullmatch(r"https?://[^\s/]+/\S*", str(value))
    return None if ok else "an http(s):// URL with a path, e.g. https://shop.example/h/"


def pin(value: Any) -> str | None:
    return None if re.fullmatch(r"\d{4,12}", str(value)) else "4 to 12 digits"


def checked(default: Any, check: Check | None = None, doc: str = "") -> Any:
    """A field with a default, an optional check and a line of help for the reference."""
    return field(default=default, metadata={"check": check, "doc": doc})


def table(doc: str = "", check: Check | None = None) -> Any:
    """A table of strings, e.g. ``[hq.tokens]`` (numbers, as in a port map, are read as their text)."""
    return field(default_factory=dict, metadata={"check": check, "doc": doc})


def required(check: Check | None = None, doc: str = "") -> Any:
    return field(metadata={"check": check, "doc": doc, "required": True})


def hex_key(value: Any) -> str | None:
    ok = value == "" or re.fullmatch(r"[0-9a-f]{64}", str(value))
    return None if ok else "64 hex digits from `touchpoint hq device-key STORE DEVICE` (empty: not set)"


def client_id_prefix(value: Any) -> str | None:
    ok = re.fullmatch(r"[A-Za-z0-9._-]{0,100}", str(value))
    return None if ok else "up to 100 of A-Z, a-z, 0-9, '.', '_', '-'"


def trait_keys(value: Any) -> str | None:
    ok = re.fullmatch(r"([\w.-]+(\s*,\s*[\w.-]+)*)?", str(value))
    return None if ok else "trait keys separated by commas"
