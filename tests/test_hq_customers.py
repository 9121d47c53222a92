"""The customer and touchpoint API over a generated dataset: journeys, pages, auth, consent, parameters."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from contract.envelope import make_event
from hq.analytics.journeys import person_events
from hq.core.identity import stitch
from hq.core.intake import to_row
from hq.storage import Storage
from hq.web.reports import parse_window, reports_of
from tests.hq_dataset import Dataset, generate
from tests.hq_support import NOW, wait_until
from tests.hq_web_support import API_TOKEN, WEB_TOKEN, bearer, hq_app, load, logged_in

API = bearer(API_TOKEN)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(seed=5, customers=60)


@pytest.fixture
def app(tmp_path: Path, dataset: Dataset) -> Iterator[Flask]:
    with hq_app(tmp_path) as app:
        load(app.extensions["hq.storage"], dataset)
        yield app


def busiest_customer(dataset: Dataset) -> str:
    """The customer token with the most stitched events in the dataset, computed in memory."""
    graph = stitch(dataset.events)
    counts = {
        person: sum(1 for e in dataset.events if graph.attribute(e) == person)
        for person in graph.persons()
        if person.startswith("customer:")
    }
    return max(counts, key=lambda p: (counts[p], p)).split(":", 1)[1]


def test_journey_pages_through_every_stitched_event_in_time_order(
    client: FlaskClient, app: Flask, dataset: Dataset
) -> None:
    customer = busiest_customer(dataset)
    graph = stitch(dataset.events)
    expected = {e["id"] for e in dataset.events if graph.attribute(e) == f"customer:{customer}"}
    seen: list[dict] = []
    cursor = None
    while True:
        query = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/customers/{customer}/journey", query_string=query, headers=API).get_json()
        assert page["customer"] == customer and len(page["events"]) <= 7
        seen.extend(page["events"])
        cursor = page["next"]
        if cursor is None:
            break
    assert {e["id"] for e in seen} == expected and len(seen) == len(expected)
    assert [e["time"] for e in seen] == sorted(e["time"] for e in seen)
    assert list(seen[0]) == ["id", "source", "type", "time", "channel", "phase", "data"]
    assert len({e["channel"] for e in seen}) >= 2  # across channels
    storage: Storage = app.extensions["hq.storage"]
    assert len(person_events(storage, stitch(dataset.events), f"customer:{customer}")) == len(expected)


def test_an_unknown_customer_has_an_empty_journey(client: FlaskClient) -> None:
    answer = client.get("/v1/customers/nobody-here/journey", headers=API).get_json()
    assert answer == {"customer": "nobody-here", "events": [], "next": None}


@pytest.mark.parametrize(
    "query, named",
    [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"limit": "1001"}, "limit"), ({"cursor": "!!"}, "cursor")],
)
def test_journey_parameters_are_checked(client: FlaskClient, dataset: Dataset, query: dict, named: str) -> None:
    answer = client.get(f"/v1/customers/{busiest_customer(dataset)}/journey", query_string=query, headers=API)
    assert answer.status_code == 400 and answer.get_json()["error"].startswith(named)


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/v1/customers/c/journey"),
        ("get", "/v1/touchpoints"),
        ("put", "/v1/customers/c/consent"),
        ("delete", "/v1/customers/c"),
    ],
)
@pytest.mark.parametrize("headers", [{}, bearer("nope"), bearer(WEB_TOKEN)])
def test_the_read_api_needs_the_api_token_or_a_session(
    client: FlaskClient, method: str, path: str, headers: dict
) -> None:
    answer = getattr(client, method)(path, headers=headers, json={"consent": "granted"})
    assert answer.status_code == 401
    assert client.get("/v1/customers/c/journey").status_code == 401


def test_a_dashboard_session_reads_the_api(app: Flask) -> None:
    assert logged_in(app).get("/v1/customers/c/journey").status_code == 200


def test_touchpoints_report_and_its_parameters(client: FlaskClient, dataset: Dataset) -> None:
    start, end = dataset.start.date().isoformat(), (dataset.start + timedelta(days=30)).date().isoformat()
    report = client.get("/v1/touchpoints", query_string={"from": start, "to": end}, headers=API).get_json()
    assert report["window"]["start"].startswith(start) and report["store"] is None
    kinds = {t["touchpoint"].split("/")[2] for t in report["touchpoints"]}
    assert {"mirror", "kiosk", "page"} <= kinds
    first = report["touchpoints"][0]
    assert {"sessions", "persons", "conversion", "nps", "csat"} <= set(first) and "n" in first["nps"]
    assert report["funnel"] and report["size_requests"] and report["paths"]
    one = client.get(
        "/v1/touchpoints", query_string={"from": start, "to": end, "store": "berlin-01"}, headers=API
    ).get_json()
    assert one["store"] == "berlin-01" and {r["store"] for r in one["size_requests"]} <= {"berlin-01"}
    for query, named in [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": end, "to": start}, "from"),
        ({"store": "Berlin 01"}, "store"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "from"),
    ]:
        answer = client.get("/v1/touchpoints", query_string=query, headers=API)
        assert answer.status_code == 400 and answer.get_json()["error"].startswith(named), query


def test_a_report_kept_under_its_data_versions_is_served_until_the_data_changes(app: Flask, dataset: Dataset) -> None:
    query = {"from": dataset.start.isoformat(), "to": (dataset.start + timedelta(days=20)).isoformat()}
    client = app.test_client()
    first = client.get("/v1/touchpoints", query_string=query, headers=API)
    assert first.status_code == 200
    kept = reports_of(app).get(parse_window(query, NOW), None)
    assert kept.done() and client.get("/v1/touchpoints", query_string=query, headers=API).get_json() == first.get_json()
    late = make_event(
        "page.viewed",
        {"anonymous_id": "late-visitor", "page": "home"},
        source="/channels/web",
        time=dataset.start + timedelta(days=3),
    )
    app.extensions["hq.storage"].store_events([to_row(late, json.dumps(late), None, NOW)])
    again = client.get("/v1/touchpoints", query_string=query, headers=API).get_json()
    home = [t for t in again["touchpoints"] if t["touchpoint"] == "web/home/page"]
    before = [t for t in first.get_json()["touchpoints"] if t["touchpoint"] == "web/home/page"]
    assert home[0]["sessions"] == before[0]["sessions"] + 1


def test_consent_through_the_api_governs_stitching(client: FlaskClient, dataset: Dataset) -> None:
    customer = busiest_customer(dataset)
    before = client.get(f"/v1/customers/{customer}/journey", query_string={"limit": 1000}, headers=API).get_json()
    answer = client.put(f"/v1/customers/{customer}/consent", json={"consent": "denied"}, headers=API)
    assert answer.get_json() == {"customer": customer, "consent": "denied"}
    after = client.get(f"/v1/customers/{customer}/journey", query_string={"limit": 1000}, headers=API).get_json()
    # Denied: only the events carrying their own token stay theirs; nothing is stitched to them.
    assert 0 < len(after["events"]) < len(before["events"])
    assert all(e["data"].get("customer") == customer for e in after["events"])
    client.put(f"/v1/customers/{customer}/consent", json={"consent": "granted"}, headers=API)
    again = client.get(f"/v1/customers/{customer}/journey", query_string={"limit": 1000}, headers=API).get_json()
    assert again == before
    for body in ({"consent": "maybe"}, {}, []):
        bad = client.put(f"/v1/customers/{customer}/consent", json=body, headers=API)
        assert bad.status_code == 400


@given(
    start=st.none() | st.text(max_size=30) | st.dates().map(str) | st.datetimes().map(lambda d: d.isoformat()),
    end=st.none() | st.text(max_size=30) | st.dates().map(str),
)
def test_any_period_parameters_give_a_window_or_an_error_naming_them(start: str | None, end: str | None) -> None:
    args = {name: value for name, value in (("from", start), ("to", end)) if value is not None}
    try:
        window = parse_window(args, NOW)
    except ValueError as error:
        assert str(error).split(":", 1)[0] in ("from", "to")
    else:
        assert window.start < window.end and window.start.tzinfo is not None


def test_a_report_not_ready_in_its_budget_is_a_202_with_retry_after_and_journeys_go_on(
    app: Flask, dataset: Dataset
) -> None:
    query = {"from": dataset.start.isoformat(), "to": (dataset.start + timedelta(days=20)).isoformat()}
    app.config["HQ_REPORT_WAIT_S"] = 0.2
    busy = threading.Event()
    reports_of(app)._pool.submit(busy.wait, 30)  # the report thread is busy with an earlier report
    client = app.test_client()
    try:
        waiting = client.get("/v1/touchpoints", query_string=query, headers=API)
        assert waiting.status_code == 202 and waiting.headers["Retry-After"] == "2"
        assert waiting.get_json()["status"] == "computing"
        assert client.get(f"/v1/customers/{busiest_customer(dataset)}/journey", headers=API).status_code == 200
        assert client.get("/v1/touchpoints", query_string=query, headers=API).status_code == 202  # the same one
        late = make_event(
            "page.viewed", {"anonymous_id": "v-9", "page": "home"}, source="/channels/web", time=dataset.start
        )
        app.extensions["hq.storage"].store_events([to_row(late, json.dumps(late), None, NOW)])
        assert client.get("/v1/touchpoints", query_string=query, headers=API).status_code == 202
        assert len(reports_of(app)._running) == 1  # new data while it waits queues no second count
    finally:
        busy.set()
    wait_until(
        lambda: client.get("/v1/touchpoints", query_string=query, headers=API).status_code == 200,
        what="the report after the thread was free",
    )


@pytest.mark.parametrize("value", [["granted"], {"state": "granted"}, None, 3, "maybe"])
def test_a_consent_that_is_not_one_of_the_states_is_a_400_naming_the_field(client: FlaskClient, value: object) -> None:
    answer = client.put("/v1/customers/cust-00001/consent", json={"consent": value}, headers=API)
    assert answer.status_code == 400 and answer.get_json()["error"].startswith("consent:")
