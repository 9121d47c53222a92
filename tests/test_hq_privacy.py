"""Erasure leaves nothing of a customer in any table (SQLite and PostgreSQL), and personal hints
reach the stores only for consenting customers, checked on a real broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contract.envelope import parse_time
from hq.analytics import people
from hq.core.identity import stitch
from hq.core.records import DeadLetter, hour_of
from hq.mqtt import publisher
from hq.storage import Storage
from hq.web.customers_api import RECOMPUTE
from tests.conftest import make_storage
from tests.hq_dataset import Dataset, generate
from tests.hq_support import BACKENDS, NOW, Peer
from tests.hq_web_support import API_TOKEN, bearer, hq_app, hq_config, load
from touchpoint.services import Mosquitto, free_port

RECOMMENDATIONS = "touchpoint/v1/+/recommendations"


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(seed=11, customers=50)


def customers_by_consent(dataset: Dataset) -> dict[str, list[str]]:
    """Consent state -> customer tokens of the dataset (``unknown``: never stated)."""
    tokens = sorted({e["data"]["customer"] for e in dataset.events if isinstance(e["data"].get("customer"), str)})
    found: dict[str, list[str]] = {}
    for token in tokens:
        found.setdefault(dataset.consent.get(f"customer:{token}", "unknown"), []).append(token)
    return found


def tables(storage: Storage) -> list[str]:
    if storage.dialect == "sqlite":
        rows = storage.fetchall("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    else:
        rows = storage.fetchall("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    return sorted(r[0] for r in rows)


def mentions(storage: Storage, values: set[str]) -> list[tuple[str, Any]]:
    """Every cell of every table that is, or holds as a JSON string, one of ``values``."""
    found = []
    quoted = {json.dumps(v) for v in values}
    for table in tables(storage):
        for row in storage.fetchall(f"SELECT * FROM {table}"):
            for cell in row:
                text = (
                    bytes(cell).decode("utf-8", "replace")
                    if isinstance(cell, (bytes, memoryview))
                    else (json.dumps(cell) if isinstance(cell, (dict, list)) else str(cell))
                )
                if text in values or any(q in text for q in quoted) or any(v in text for v in values if len(v) > 20):
                    found.append((table, cell))
    return found


def stored_per_device(storage: Storage) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    counters = {(s, d): int(n) for s, d, n in storage.fetchall("SELECT store, device, stored FROM devices")}
    held = {
        (s, d): int(n)
        for s, d, n in storage.fetchall(
            "SELECT store, device, COUNT(*) FROM events WHERE device IS NOT NULL GROUP BY store, device"
        )
    }
    return counters, held


@pytest.mark.parametrize("backend", BACKENDS)
def test_erasure_leaves_nothing_of_them_anywhere(
    backend: str, tmp_path: Path, dataset: Dataset, request: pytest.FixtureRequest
) -> None:
    with make_storage(backend, tmp_path, request) as setup:
        load(setup, dataset)
        url = setup.url if backend == "postgres" else f"sqlite:///{setup.path}"  # type: ignore[attr-defined]
    by_consent = customers_by_consent(dataset)
    granted, denied = by_consent["granted"][0], by_consent["denied"][0]
    graph = stitch(dataset.events)
    linked = {
        g: {i.split(":", 1)[1] for i in graph.members(graph.person_of(f"customer:{g}"))} for g in (granted, denied)
    }
    assert len(linked[granted]) > 2  # sessions, anonymous ids, hand-offs: stitching had something to erase
    # A denied customer's sessions are not stitched to them, yet their own events name them.
    linked[denied] |= {
        e["data"]["session_id"]
        for e in dataset.events
        if e["data"].get("customer") == denied and "session_id" in e["data"]
    }
    with hq_app(tmp_path, url) as app:
        storage: Storage = app.extensions["hq.storage"]
        session = sorted(linked[granted] - {granted})[0]
        storage.store_dead_letters(
            [
                DeadLetter(
                    NOW,
                    "touchpoint/v1/x/y/events",
                    "data.gtin: required",
                    json.dumps({"data": {"session_id": session}}).encode(),
                )
            ]
        )
        client = app.test_client()
        client.put(f"/v1/customers/{granted}/consent", json={"consent": "granted"}, headers=bearer(API_TOKEN))
        total = storage.fetchall("SELECT COUNT(*) FROM events")[0][0]
        assert mentions(storage, linked[granted] | linked[denied])
        other = by_consent["granted"][1]
        before_other = client.get(f"/v1/customers/{other}/journey?limit=1000", headers=bearer(API_TOKEN)).get_json()

        erased = 0
        for customer in (granted, denied):
            answer = client.delete(f"/v1/customers/{customer}", headers=bearer(API_TOKEN))
            assert answer.status_code == 200 and answer.get_json()["republish"] == "off"
            erased += answer.get_json()["events"]
        assert mentions(storage, linked[granted] | linked[denied]) == []
        assert storage.fetchall("SELECT COUNT(*) FROM events")[0][0] == total - erased > 0
        counters, held = stored_per_device(storage)
        assert counters == {key: held.get(key, 0) for key in counters}
        journey = client.get(f"/v1/customers/{granted}/journey", headers=bearer(API_TOKEN)).get_json()
        assert journey["events"] == []
        after_other = client.get(f"/v1/customers/{other}/journey?limit=1000", headers=bearer(API_TOKEN)).get_json()
        assert after_other == before_other and after_other["events"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_erasure_bumps_the_hours_of_the_events_it_deletes(
    backend: str, tmp_path: Path, dataset: Dataset, request: pytest.FixtureRequest
) -> None:
    """Per-hour analytics caches must see an erasure as a change of exactly those hours."""
    with make_storage(backend, tmp_path, request) as storage:
        load(storage, dataset)
        hours = {(e["source"], e["id"]): hour_of(parse_time(e["time"])) for e in storage.read_events()}
        span = min(hours.values()), max(hours.values()) + 1
        before = storage.hour_versions(*span)
        erased = people.erase(storage, customers_by_consent(dataset)["granted"][0])
        kept = {(e["source"], e["id"]) for e in storage.read_events()}
        after = storage.hour_versions(*span)
    hit = {hour for key, hour in hours.items() if key not in kept}
    assert erased.events == len(hours) - len(kept) and hit
    assert set(after) == set(before) == set(hours.values())
    assert {hour for hour in before if after[hour] != before[hour]} == hit
    assert all(after[hour] > before[hour] for hour in hit)


def collect(listener: Peer, stores: list[str]) -> dict[str, dict[str, Any]]:
    """The latest retained recommendations document of each store."""
    got: dict[str, dict[str, Any]] = {}
    while set(got) != set(stores):
        message = listener.next(15)
        got[message.topic.split("/")[2]] = json.loads(message.payload)
    return got


def test_personal_hints_reach_stores_only_for_consenting_customers(
    tmp_path: Path, dataset: Dataset, mosquitto: Mosquitto
) -> None:
    config = hq_config(tmp_path, mqtt={"url": mosquitto.url})
    by_consent = customers_by_consent(dataset)
    with hq_app(tmp_path) as app:
        storage: Storage = app.extensions["hq.storage"]
        load(storage, dataset)
        stores = storage.stores()
        done = publisher.recompute(config, storage, publisher.catalog_of(config), dataset.end)
        assert list(done.stores) == stores and done.customers > 0
        with Peer(mosquitto.url, [RECOMMENDATIONS], "test-store-listener") as listener:
            messages = collect(listener, stores)
        raw = json.dumps(messages)
        hinted = {token for m in messages.values() for token in m["customers"]}
        assert hinted and hinted <= set(by_consent["granted"])
        for state in ("denied", "revoked", "unknown"):
            for token in by_consent.get(state, []):
                assert json.dumps(token) not in raw, (state, token)

        # Erasure republishes: a granted customer's hints disappear from the retained messages.
        gone = sorted(hinted)[0]
        recomputer = publisher.Recomputer(config, storage, clock=lambda: dataset.end).start()
        app.extensions[RECOMPUTE] = recomputer
        try:
            with Peer(mosquitto.url, [RECOMMENDATIONS], "test-store-listener-2") as listener:
                collect(listener, stores)  # the retained ones, with them
                answer = app.test_client().delete(f"/v1/customers/{gone}", headers=bearer(API_TOKEN))
                assert answer.get_json()["republish"] == "scheduled"
                fresh = collect(listener, stores)
        finally:
            recomputer.stop()
        assert json.dumps(gone) not in json.dumps(fresh)
        assert {token for m in fresh.values() for token in m["customers"]} == hinted - {gone}


def test_a_broker_that_is_not_there_is_an_error_not_a_hang(tmp_path: Path) -> None:
    config = hq_config(tmp_path, mqtt={"url": f"mqtt://127.0.0.1:{free_port()}"})
    with pytest.raises(publisher.PublishFailed, match="unreachable"):
        publisher.publish(config.mqtt, {"s": {}}, connect_timeout_s=0.5)
