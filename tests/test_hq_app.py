"""The HQ web app factory, its endpoints, and ``serve`` running ingest and web together."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from common import config as configuration
from common.errors import ConfigError
from hq.core.intake import parse_events, parse_status
from hq.core.records import DeviceBatch, DeviceStatus
from hq.prometheus import RateWindow
from hq.server import serve
from hq.storage import Storage, open_storage
from hq.web.app import create_app
from tests.acknowledger import ACK_SECRET
from tests.hq_support import DEVICE, NOW, Peer, events, payload, wait_until
from touchpoint.cli import main
from touchpoint.services import Mosquitto, free_port, wait_for_port


def get_json(url: str) -> object:
    with urllib.request.urlopen(url) as response:
        return json.load(response)


API_TOKEN = "api-token-0123456789"
METRICS_TOKEN = "metrics-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def get_json_as_reader(url: str) -> object:
    with urllib.request.urlopen(urllib.request.Request(url, headers=AUTH)) as response:
        return json.load(response)


def hq_config(tmp_path: Path, **sections: dict) -> configuration.HqConfig:
    document: dict = {
        "database": {"url": f"sqlite:///{tmp_path}/hq.db"},
        "hq": {"api_token": API_TOKEN, "ack_secret": ACK_SECRET},
        "web": {"metrics_token": METRICS_TOKEN},
    }
    for name, table in sections.items():
        document[name] = {**document.get(name, {}), **table}
    return configuration.from_dict(configuration.HqConfig, document)


@pytest.fixture
def hq_storage(tmp_path: Path) -> Iterator[Storage]:
    storage = open_storage(f"sqlite:///{tmp_path}/hq.db")
    yield storage
    storage.close()


@pytest.fixture
def app(tmp_path: Path, hq_storage: Storage) -> Flask:
    return create_app(hq_config(tmp_path), hq_storage, checks={"mqtt": lambda: True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A client that reads as the API token's holder."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = AUTH["Authorization"]
    return client


def test_factory_opens_the_configured_database(tmp_path: Path) -> None:
    app = create_app(hq_config(tmp_path))
    try:
        assert app.test_client().get("/v1/devices", headers=AUTH).get_json() == []
        assert {"api", "health"} <= set(app.blueprints)
    finally:
        app.extensions["hq.storage"].close()
    assert (tmp_path / "hq.db").exists()


def test_devices_lists_exactly_the_documented_fields(client: FlaskClient, hq_storage: Storage) -> None:
    batch = parse_events(DEVICE.events, payload(events([1, 2, 4])), NOW)
    status = parse_status(DEVICE.status, b'{"state": "online", "backlog": 3}', NOW)
    assert isinstance(batch, DeviceBatch) and isinstance(status, DeviceStatus)
    hq_storage.store_device_batch(batch)
    hq_storage.record_status(status)
    response = client.get("/v1/devices")
    assert response.get_data(as_text=True).startswith('[{"store":"test-store","device":"mirror-1","online":true,')
    assert response.get_json() == [
        {
            "store": "test-store",
            "device": "mirror-1",
            "online": True,
            "last_seen": "2026-11-23T14:00:00.000Z",
            "backlog": 3,
            "stored": 3,
            "contiguous_seq": 2,
            "gaps": [[3, 3]],
        }
    ]


def test_dead_letters_are_readable_and_the_limit_is_checked(client: FlaskClient, hq_storage: Storage) -> None:
    for n in range(3):
        refused = parse_events(DEVICE.events, f"[{n}".encode(), NOW)
        hq_storage.store_dead_letters(refused.dead)  # type: ignore[union-attr]
    letters = client.get("/v1/dead-letters?limit=2").get_json()
    assert [d["raw"] for d in letters] == ["[2", "[1"]
    assert letters[0]["topic"] == DEVICE.events and letters[0]["kind"] == "json"
    for bad in ("0", "-1", "x", "100000"):
        response = client.get(f"/v1/dead-letters?limit={bad}")
        assert response.status_code == 400 and "limit" in response.get_json()["error"]


def test_healthz_reports_each_check(tmp_path: Path, hq_storage: Storage) -> None:
    healthy = create_app(hq_config(tmp_path), hq_storage, checks={"mqtt": lambda: True}).test_client()
    assert healthy.get("/healthz").get_json() == {"status": "ok", "checks": {"database": True, "mqtt": True}}
    failing = create_app(hq_config(tmp_path), hq_storage, checks={"mqtt": lambda: False}).test_client()
    response = failing.get("/healthz")
    assert response.status_code == 503 and response.get_json()["checks"]["mqtt"] is False


def test_metrics_include_fleet_gauges(client: FlaskClient, hq_storage: Storage) -> None:
    batch = parse_events(DEVICE.events, payload(events([1, 5, 6])), NOW)
    hq_storage.store_device_batch(batch)  # type: ignore[arg-type]
    text = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).get_data(as_text=True)
    assert "touchpoint_hq_devices 1.0" in text and "touchpoint_hq_gap_events 3.0" in text
    assert "touchpoint_hq_devices_with_gaps 1.0" in text and "touchpoint_hq_ingest_rate" in text


def test_rate_window_forgets_old_events() -> None:
    window = RateWindow(span_s=10)
    window.add(50, now=100.0)
    window.add(30, now=105.0)
    assert window.rate(now=106.0) == 8.0
    assert window.rate(now=111.0) == 3.0
    assert window.rate(now=200.0) == 0.0


def test_serve_ingests_and_answers_http_until_stopped(tmp_path: Path, mosquitto: Mosquitto) -> None:
    port = free_port()
    config = hq_config(tmp_path, web={"listen": f"127.0.0.1:{port}"}, mqtt={"url": mosquitto.url}, hq={"workers": 2})
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(config, "all", stop))
    thread.start()
    try:
        wait_for_port(port)
        with Peer(mosquitto.url, [DEVICE.ack], "test-listener") as acks, Peer(mosquitto.url) as device:
            # Re-sent until a worker's subscription is live; the retained status says when.
            device.send(DEVICE.status, b'{"state": "online", "backlog": 0}', retain=True)
            devices_url = f"http://127.0.0.1:{port}/v1/devices"
            wait_until(lambda: get_json_as_reader(devices_url) != [], what="status stored")
            device.send(DEVICE.events, payload(events([1, 2, 3])))
            assert acks.ack() == 3
        (row,) = get_json_as_reader(devices_url)  # type: ignore[misc]
        assert row.pop("last_seen").endswith("Z")
        assert row == {
            "store": "test-store",
            "device": "mirror-1",
            "online": True,
            "backlog": 0,
            "stored": 3,
            "contiguous_seq": 3,
            "gaps": [],
        }
        assert get_json(f"http://127.0.0.1:{port}/healthz") == {
            "status": "ok",
            "checks": {"database": True, "mqtt": True},
        }
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_ingest_role_stores_without_a_web_server(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = hq_config(tmp_path, mqtt={"url": mosquitto.url, "protocol": "3.1.1"})
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(config, "ingest", stop))
    thread.start()
    try:
        with Peer(mosquitto.url, [DEVICE.ack], "test-listener") as acks, Peer(mosquitto.url) as device:
            # The worker may subscribe after this retained message; it arrives then all the same.
            device.send(DEVICE.status, b'{"state": "online"}', retain=True)
            with open_storage(config.database.url) as storage:
                wait_until(lambda: storage.devices() != [], what="status stored")
                device.send(DEVICE.events, payload(events([1, 2])))
                assert acks.ack() == 2
                assert storage.devices()[0].stored == 2
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_serve_refuses_an_unknown_role_and_workers_without_a_share_group(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="role"):
        serve(hq_config(tmp_path), "everything", threading.Event())
    with pytest.raises(ConfigError, match="hq.workers"):
        serve(hq_config(tmp_path, hq={"workers": 2, "share_group": ""}), "all", threading.Event())


def test_cli_hq_has_a_documented_role_option() -> None:
    result = CliRunner().invoke(main, ["hq", "--help"])
    assert result.exit_code == 0 and "--role [all|ingest|web]" in result.output
