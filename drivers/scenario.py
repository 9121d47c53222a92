"""Scenarios for the simulated reader: when which tags enter and leave the field.

A scenario is a list of steps. The JSON file format is a list of objects::

    [
      {"at": 0,   "present": ["3074257BF7194E4000001A85", {"epc": "30340A...", "rssi": -62}]},
      {"at": 12.5, "remove": ["3074257BF7194E4000001A85"]},
      {"at": 20,  "remove": ["30340A..."]}
    ]

``at`` is seconds from the start of the scenario (steps may come in any order; they are sorted);
``present`` lists tags to put in the field, as EPC hex strings or ``{"epc", "rssi"}`` objects
(rssi defaults to -50 dBm); ``remove`` lists tags that leave. For id12/rdm6300 the "EPC" is the
10-hex-digit tag id. A looping scenario starts over after its last step, with the field empty.

The built-in ``fitting-room`` scenario has shoppers enter a cabin with 1 to 4 garments, keep them a
while and leave, with tags of the sample catalogue (``contract/sample/catalog.json``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from drivers.epc import encode_sgtin96
from drivers.errors import ReaderError

DEFAULT_RSSI = -50
FALLBACK_GTINS = ("80614141123458",)  # the GS1 TDS example, when no sample catalogue is installed
CATALOGUE_PREFIX_LENGTH = 7  # the sample catalogue's company prefix 4012345
BUILT_IN = ("fitting-room",)
UHF = ("m100", "mercury")  # readers of SGTIN EPCs; the others read 125 kHz tag ids


class ScenarioError(ReaderError, ValueError):
    """A scenario file is missing or malformed; the message names the step and the problem."""


@dataclass(frozen=True)
class Step:
    """At ``at`` seconds, tags enter (epc, rssi) and leave the field."""

    at: float
    present: tuple[tuple[str, int], ...] = ()
    remove: tuple[str, ...] = ()


def load(name_or_path: str, protocol: str, seed: int | None = None) -> tuple[Step, ...]:
    """A built-in scenario by name, or a JSON scenario file; raises ScenarioError."""
    if name_or_path == "fitting-room":
        return fitting_room(catalogue_tags(protocol), random.Random(seed))
    path = Path(name_or_path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(
            f"no scenario {name_or_path!r}: neither built-in ({', '.join(BUILT_IN)}) nor a file"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ScenarioError(f"scenario {path}: {error}") from None
    return parse(document)


def parse(document: Any) -> tuple[Step, ...]:
    """Steps from a parsed JSON scenario, sorted by time; raises ScenarioError."""
    if not isinstance(document, list) or not document:
        raise ScenarioError("a scenario is a non-empty JSON list of steps")
    return tuple(sorted((_step(i, item) for i, item in enumerate(document)), key=lambda s: s.at))


def _step(index: int, item: Any) -> Step:
    where = f"step {index}"
    if not isinstance(item, dict) or set(item) - {"at", "present", "remove"}:
        raise ScenarioError(f"{where}: an object with keys at, present, remove")
    at = item.get("at")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
        raise ScenarioError(f"{where}: 'at' must be seconds >= 0, got {at!r}")
    present = []
    for tag in _list(where, item, "present"):
        if isinstance(tag, str):
            present.append((tag.upper(), DEFAULT_RSSI))
        elif isinstance(tag, dict) and isinstance(tag.get("epc"), str) and isinstance(tag.get("rssi", 0), int):
            present.append((tag["epc"].upper(), tag.get("rssi", DEFAULT_RSSI)))
        else:
            raise ScenarioError(f'{where}: each of \'present\' is an EPC string or {{"epc": ..., "rssi": int}}')
    remove = _list(where, item, "remove")
    if not all(isinstance(tag, str) for tag in remove):
        raise ScenarioError(f"{where}: 'remove' is a list of EPC strings")
    return Step(float(at), tuple(present), tuple(tag.upper() for tag in remove))


def _list(where: str, item: dict[str, Any], key: str) -> list[Any]:
    value = item.get(key, [])
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: {key!r} must be a list")
    return value


def catalogue_tags(protocol: str, serials: int = 3) -> list[str]:
    """Tags for the sample catalogue's articles: SGTIN-96 EPCs for the UHF readers, 125 kHz tag ids else.

    125 kHz tag ids come from the catalogue rows' ``tags``; without any, from the EPCs' last 10
    hex digits (which the kiosk then shows as unknown tags).
    """
    rows = _catalogue_rows()
    gtins = [row["gtin"] for row in rows if isinstance(row.get("gtin"), str)] or list(FALLBACK_GTINS)
    uhf = protocol in UHF
    if not uhf:
        ids = [tag for row in rows for tag in row.get("tags", []) if isinstance(tag, str)]
        if ids:
            return ids
    epcs = [encode_sgtin96(gtin, serial, CATALOGUE_PREFIX_LENGTH) for gtin in gtins for serial in range(1, serials + 1)]
    return epcs if uhf else [epc[-10:] for epc in epcs]


def _catalogue_rows() -> list[dict[str, Any]]:
    try:
        text = resources.files("contract").joinpath("sample/catalog.json").read_text(encoding="utf-8")
        products = json.loads(text)["products"]
    except (ModuleNotFoundError, OSError, ValueError, KeyError, TypeError):
        return []
    return [row for row in products if isinstance(row, dict)] if isinstance(products, list) else []


def fitting_room(tags: Sequence[str], rng: random.Random, shoppers: int = 4) -> tuple[Step, ...]:
    """Shoppers in turn bring 1-4 garments into the cabin, keep them 8-25 s, and leave."""
    steps = []
    t = 1.0
    for _ in range(shoppers):
        garments = rng.sample(list(tags), min(len(tags), rng.randint(1, 4)))
        entries = [(epc, rng.randint(-68, -42)) for epc in garments]
        steps.append(Step(round(t, 1), present=tuple(entries)))
        t += rng.uniform(8, 25)
        steps.append(Step(round(t, 1), remove=tuple(garments)))
        t += rng.uniform(3, 8)
    return tuple(steps)


def due(steps: Iterable[Step], after: float, until: float) -> list[Step]:
    """The steps with ``after < at <= until`` (``after`` < 0 includes a step at 0)."""
    return [step for step in steps if after < step.at <= until]
