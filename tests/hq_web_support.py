"""Helpers for the HQ API and dashboard tests: configs, a logged-in client, a loaded dataset, a live server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from common import config as configuration
from contract.envelope import EDGE_SOURCE
from contract.topics import DeviceTopics
from hq.core.intake import to_row
from hq.core.records import DeviceBatch
from hq.server import serve
from hq.storage import Storage
from hq.web.app import create_app
from tests.hq_dataset import Dataset
from tests.hq_support import NOW
from touchpoint.services import free_port, wait_for_port

WEB_TOKEN = "web-token-0123456789"
POS_TOKEN = "pos-token-0123456789"
API_TOKEN = "api-token-0123456789"
METRICS_TOKEN = "metrics-token-0123456789"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}  # what Prometheus sends for /metrics
USER, PASSWORD = "anna", "correct horse battery"
USERS = {USER: generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}  # cheap for tests


def hq_config(tmp_path: Path, url: str | None = None, **sections: dict[str, Any]) -> configuration.HqConfig:
    """An HqConfig with tokens, a user and a database under ``tmp_path`` (or ``url``)."""
    document: dict[str, Any] = {
        "database": {"url": url or f"sqlite:///{tmp_path}/hq.db"},
        "hq": {
            "tokens": {"web": WEB_TOKEN, "pos": POS_TOKEN},
            "users": USERS,
            "api_token": API_TOKEN,
            "secret_key": "test-secret",
        },
        "web": {"metrics_token": METRICS_TOKEN},
    }
    for name, table in sections.items():
        document[name] = {**document.get(name, {}), **table}
    return configuration.from_dict(configuration.HqConfig, document)


@contextmanager
def hq_app(tmp_path: Path, url: str | None = None, **sections: dict[str, Any]) -> Iterator[Flask]:
    """``create_app`` over a fresh database; its storage is closed afterwards."""
    app = create_app(hq_config(tmp_path, url, **sections))
    try:
        yield app
    finally:
        app.extensions["hq.storage"].close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf_of(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        return session.get("csrf") or ""


def logged_in(app: Flask) -> FlaskClient:
    """A test client with a dashboard session."""
    client = app.test_client()
    client.get("/login")
    answer = client.post("/login", data={"name": USER, "password": PASSWORD, "csrf": csrf_of(client)})
    assert answer.status_code == 302, answer.text
    return client


def load(storage: Storage, dataset: Dataset) -> None:
    """Store a dataset as HQ would receive it: edge events as device batches (seq tracking,
    ``stored`` counters), digital events through ``store_events``."""
    per_device: dict[str, list[Any]] = {}
    digital = []
    for event in dataset.events:
        row = to_row(event, json.dumps(event), None, NOW)
        if row.seq is None:
            digital.append(row)
        else:
            per_device.setdefault(event["source"], []).append(row)
    for source, rows in per_device.items():
        match = EDGE_SOURCE.fullmatch(source)
        assert match is not None
        device = DeviceTopics(match["store"], match["device"])
        storage.store_device_batch(DeviceBatch(device, NOW, tuple(rows), (), tuple(r.seq for r in rows if r.seq)))
    storage.store_events(digital)


def listening(tmp_path: Path, url: str | None = None, **sections: dict[str, Any]) -> configuration.HqConfig:
    """:func:`hq_config` with ``[web] listen`` on a free port."""
    return hq_config(tmp_path, url, web={"listen": f"127.0.0.1:{free_port()}"}, **sections)


@contextmanager
def live_hq(config: configuration.HqConfig, role: str = "web") -> Iterator[str]:
    """``hq.server.serve`` in a thread; yields the base URL, stops it afterwards."""
    port = int(config.web.listen.rpartition(":")[2])
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(config, role, stop))
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()
