"""Helpers for the edge app's tests: a hand-driven clock, the app as tests build it, its events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask

from common import config as configuration
from contract.envelope import validate
from drivers import encode_sgtin96
from kiosk import create_app
from kiosk.edge import EXTENSION, Edge
from sync.outbox import Outbox
from tests.acknowledger import ack_key


def edge_config(tmp_path: Path, **sections: dict | list) -> configuration.EdgeConfig:
    """An EdgeConfig for tests: a mirror in test-store with its outbox under ``tmp_path``; a list is an
    array of tables (``readers=[...]``)."""
    document: dict[str, Any] = {
        "device": {"store_id": "test-store", "device_id": "mirror-1", "role": "mirror"},
        "outbox": {"path": str(tmp_path / "edge.db")},
        "mqtt": {"ack_key": ack_key()},
    }
    for name, table in sections.items():
        document[name] = table if isinstance(table, list) else {**document.get(name, {}), **table}
    return configuration.from_dict(configuration.EdgeConfig, document)


SHIRT_M = "04012345010015"  # LS-100 blau M; L in blau is 04012345010022
SHIRT_EPC = encode_sgtin96(SHIRT_M, 17, 7)
JEANS_EPC = encode_sgtin96("04012345030013", 3, 7)
FOREIGN_EPC = "E28011700000020A1B2C3D4E"  # not SGTIN: recorded by its EPC, no GTIN
PIN = "4711"


class Clock:
    """Time passed in by hand, so session and departure timeouts need no sleeping."""

    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def build(tmp_path: Path, outbox: Outbox, clock: Clock, role: str = "mirror", pin: str = PIN) -> Flask:
    config = edge_config(
        tmp_path,
        device={"role": role},
        reader={"protocol": "m100", "url": "loop://", "zone": "cabin-1", "departure_s": 3.0, "min_reads": 1},
        session={"cabin_empty_s": 30, "kiosk_idle_s": 60},
        staff={"pin": pin},
    )
    return create_app(config, outbox=outbox, clock=clock, start_readers=False)


def edge_of(app: Flask) -> Edge:
    return app.extensions[EXTENSION]


def events(outbox: Outbox) -> list[dict[str, Any]]:
    """Every stored event, each checked the way HQ checks it."""
    return [validate(json.loads(p.body)) for p in outbox.pending(limit=10_000, max_bytes=10**9)]
