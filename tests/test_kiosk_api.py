"""The edge app through its HTTP API: every route, its errors, and what reaches the outbox.

The reader is not started; the tests feed ``Edge.on_read`` (the reader thread's entry point) and
``Edge.tick`` (the ticker's) with a manual clock, so timeouts need no waiting.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.webserver import MONITORING
from drivers import TagRead
from kiosk import create_app, shutdown
from sync.outbox import Outbox
from sync.state import StateTable, SyncState
from tests.conftest import wait_until
from tests.kiosk_support import FOREIGN_EPC, PIN, SHIRT_EPC, SHIRT_M, Clock, build, edge_config, edge_of, events


def names(outbox: Outbox) -> list[str]:
    return [e["type"].removeprefix("touchpoint.") for e in events(outbox)]


def login(client: FlaskClient) -> None:
    assert client.post("/staff/login", data={"pin": PIN}).status_code == 302


# -- the factory -----------------------------------------------------------------------------


def test_factory_defaults_config_and_override(tmp_path: Path, outbox: Outbox, clock: Clock) -> None:
    config = edge_config(tmp_path)
    app = create_app(
        config, outbox=outbox, clock=clock, start_readers=False, overrides={"HANDOFF_BASE_URL": "https://shop.test/h/"}
    )
    try:
        assert app.config["TOUCHPOINT"] is config
        assert app.config["HANDOFF_BASE_URL"] == "https://shop.test/h/"
        assert app.config["SSE_HEARTBEAT_S"] == 15.0  # a default survives
        assert len(app.config["SECRET_KEY"]) == 64
        assert edge_of(app).reader is None and edge_of(app).zone == "screen"  # no [reader]
    finally:
        shutdown(app)
    assert outbox.stats().depth == 0  # a passed-in outbox stays open for its owner


def test_factory_opens_and_closes_its_own_outbox(tmp_path: Path) -> None:
    app = create_app(edge_config(tmp_path), start_readers=False)
    box = edge_of(app).outbox
    assert box.path == str(tmp_path / "edge.db")
    shutdown(app)
    with pytest.raises(Exception, match="closed"):
        box.stats()


# -- screens and languages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        ("?lang=en", None, "de", "Find your style"),
        ("", "en", "de", "Find your style"),
        ("", None, "en-GB,en;q=0.9", "Find your style"),
        ("", None, "fr", "Finde deinen Style"),
        ("?lang=xx", None, "de-DE", "Finde deinen Style"),
    ],
)
def test_kiosk_screen_language(kiosk: Flask, query: str, cookie: str | None, accept: str, expected: str) -> None:
    client = kiosk.test_client()
    if cookie:
        client.set_cookie("lang", cookie)
    page = client.get("/" + query, headers={"Accept-Language": accept})
    assert page.status_code == 200 and expected in page.text
    assert 'id="search"' in page.text


def test_lang_choice_is_remembered_in_a_cookie(client: FlaskClient) -> None:
    first = client.get("/?lang=en")
    assert "In your cabin" in first.text and "lang=en" in first.headers["Set-Cookie"]
    assert "In your cabin" in client.get("/").text
    assert "In deiner Kabine" in client.get("/?lang=de").text


def test_translations_have_the_same_keys_and_every_template_key_exists() -> None:
    from importlib import resources

    ui = resources.files("ui")
    tables = {
        item.name: json.loads(item.read_text(encoding="utf-8"))
        for item in (ui / "translations").iterdir()
        if item.name.endswith(".json")
    }
    assert {"de.json", "en.json"} <= set(tables)
    de = tables["de.json"]
    assert all(set(table) == set(de) for table in tables.values())  # a new language has every key
    used = set()
    for template in (ui / "templates" / "edge").iterdir():
        text = template.read_text(encoding="utf-8")
        used |= set(re.findall(r't\(["\']([a-z_.]+)["\']\)', text))
    for script in (ui / "static" / "edge").iterdir():
        if script.name.endswith(".js"):
            used |= set(re.findall(r'T\["([a-z_.]+)"\]', script.read_text(encoding="utf-8")))
    assert len(used) > 40 and used <= set(de)


def test_catalogue_images_are_served(client: FlaskClient) -> None:
    product = client.get(f"/api/products/{SHIRT_M}").json
    with client.get(product["image_url"]) as image:
        assert image.status_code == 200 and image.mimetype == "image/svg+xml"
    with client.get("/catalog/../catalog.json") as escape:
        assert escape.status_code == 404


# -- products ----------------------------------------------------------------------------------


def test_product_with_stock_and_siblings(client: FlaskClient, outbox: Outbox) -> None:
    body = client.get(f"/api/products/{SHIRT_M}?lang=en").json
    assert body["name"] == "Linen shirt" and body["stock"] == 3 and body["price"] == "49.95"
    assert body["siblings"] and all(s["stock"] > 0 for s in body["siblings"])
    assert names(outbox) == []  # a plain lookup records nothing


def test_product_view_via_records_an_event(client: FlaskClient, outbox: Outbox) -> None:
    assert client.get(f"/api/products/{SHIRT_M}?via=search").status_code == 200
    viewed = [e for e in events(outbox) if e["type"] == "touchpoint.product.viewed"]
    assert [(e["data"]["gtin"], e["data"]["via"]) for e in viewed] == [(SHIRT_M, "search")]
    assert viewed[0]["data"]["session_id"]


def test_product_errors(client: FlaskClient) -> None:
    missing = client.get("/api/products/04012345999999")
    assert missing.status_code == 404 and missing.json["field"] == "gtin"
    bad_via = client.get(f"/api/products/{SHIRT_M}?via=telepathy")
    assert bad_via.status_code == 400 and bad_via.json["field"] == "via"


def test_search(client: FlaskClient) -> None:
    found = client.get("/api/products?q=jeans&lang=en").json["products"]
    assert found and {p["style"] for p in found} == {"JN-300"} and "siblings" not in found[0]
    empty = client.get("/api/products?q=")
    assert empty.status_code == 400 and empty.json["field"] == "q"


# -- presence, sessions and the outbox -------------------------------------------------------


def test_presence_as_design_md_fixes_it(client: FlaskClient, app: Flask, clock: Clock) -> None:
    assert client.get("/api/presence").json == {"zones": {}}
    edge_of(app).on_read(TagRead(SHIRT_EPC, -52))
    edge_of(app).on_read(TagRead(FOREIGN_EPC, -60))
    zones = client.get("/api/presence").json["zones"]
    assert list(zones) == ["cabin-1"]
    shirt, foreign = zones["cabin-1"]
    assert shirt == {"epc": SHIRT_EPC, "gtin": SHIRT_M, "rssi": -52, "since": shirt["since"]}
    assert shirt["since"].endswith("Z") and shirt["since"].startswith("2026-11-18T")
    assert foreign["gtin"] is None


def test_cabin_scenario_records_every_event_and_no_raw_read(app: Flask, outbox: Outbox, clock: Clock) -> None:
    edge = edge_of(app)
    for _ in range(5):  # repeated reads of one tag are one arrival
        edge.on_read(TagRead(SHIRT_EPC, -50))
        clock.advance(0.2)
    edge.on_read(TagRead(FOREIGN_EPC, -61))
    for _ in range(20):  # both depart at the tick 4 s in (3 s after their last reads)
        clock.advance(0.5)
        edge.tick(clock())
    clock.advance(22)
    edge.tick(clock())
    assert edge.current_session() is not None  # empty for 29 s of 30
    clock.advance(1)
    edge.tick(clock())
    assert edge.current_session() is None

    stored = events(outbox)
    assert [e["type"].removeprefix("touchpoint.") for e in stored] == [
        "session.started",
        "tag.arrived",
        "product.viewed",
        "tag.arrived",
        "tag.departed",
        "tag.departed",
        "session.ended",
    ]
    assert [e["seq"] for e in stored] == list(range(1, 8))
    session_id = stored[0]["data"]["session_id"]
    assert all(e["data"]["session_id"] == session_id for e in stored)
    assert all(e["source"] == "/stores/test-store/devices/mirror-1" for e in stored)
    arrived = stored[1]["data"]
    assert arrived | {"session_id": None} == {
        "session_id": None,
        "zone": "cabin-1",
        "epc": SHIRT_EPC,
        "gtin": SHIRT_M,
        "rssi": -50,
    }
    assert stored[2]["data"]["via"] == "tag"
    assert stored[3]["data"]["gtin"] is None
    assert stored[4]["data"]["dwell_ms"] == 800 and stored[4]["data"]["epc"] == SHIRT_EPC
    ended = stored[6]["data"]
    assert ended["reason"] == "empty" and ended["duration_ms"] == 34_000


def test_session_routes_and_the_shared_kiosk_rule(kiosk: Flask, outbox: Outbox, clock: Clock) -> None:
    client = kiosk.test_client()
    assert client.get("/api/session").json == {"session": None}
    first = client.post("/api/session/touch").json["session"]["session_id"]
    assert client.post("/api/session/touch").json["session"]["session_id"] == first
    assert client.get("/api/session").json["session"]["session_id"] == first
    assert client.post("/api/session/end").json == {"ended": first}
    assert client.post("/api/session/end").json == {"ended": None}
    second = client.post("/api/session/touch").json["session"]["session_id"]
    assert second != first
    clock.advance(60)
    edge_of(kiosk).tick(clock())
    assert client.get("/api/session").json == {"session": None}
    third = client.post("/api/session/touch").json["session"]["session_id"]
    assert third not in (first, second)
    ended = [e["data"] for e in events(outbox) if e["type"] == "touchpoint.session.ended"]
    assert [(e["session_id"], e["reason"]) for e in ended] == [(first, "shopper"), (second, "idle")]


def test_a_tag_on_the_kiosk_pad_is_a_touch_and_maps_125khz_ids(kiosk: Flask, outbox: Outbox) -> None:
    edge_of(kiosk).on_read(TagRead("62E3086C00", None))
    assert names(outbox) == ["session.started", "tag.arrived", "product.viewed"]
    assert events(outbox)[1]["data"]["gtin"] == SHIRT_M


# -- size requests and staff -----------------------------------------------------------------


def test_size_request_lifecycle(client: FlaskClient, app: Flask, outbox: Outbox, tmp_path: Path) -> None:
    created = client.post("/api/requests", json={"gtin": SHIRT_M, "size": "L"})
    assert created.status_code == 201
    request = created.json
    assert (request["requested_gtin"], request["size"], request["colour"], request["state"]) == (
        "04012345010022",
        "L",
        "blau",
        "open",
    )
    assert client.get("/api/requests").status_code == 401  # staff only
    login(client)
    assert [r["id"] for r in client.get("/api/requests").json["requests"]] == [request["id"]]
    assert client.post(f"/api/requests/{request['id']}/claim").json["state"] == "claimed"
    assert client.post(f"/api/requests/{request['id']}/claim").status_code == 409
    assert client.post(f"/api/requests/{request['id']}/brought").json["state"] == "brought"
    assert client.post(f"/api/requests/{request['id']}/cancel").status_code == 409
    assert client.post("/api/requests/nope/cancel").status_code == 404
    assert client.get("/api/requests").json["requests"] == []
    stored = {e["type"]: e["data"] for e in events(outbox)}
    for name in ("touchpoint.size.requested", "touchpoint.size.fulfilled"):
        data = stored[name]
        assert data["request_id"] == request["id"] and data["session_id"] == request["session_id"]
        assert (data["gtin"], data["requested_gtin"], data["size"], data["colour"]) == (
            SHIRT_M,
            "04012345010022",
            "L",
            "blau",
        )


def test_open_requests_survive_a_restart(tmp_path: Path, outbox: Outbox, clock: Clock) -> None:
    first = build(tmp_path, outbox, clock)
    made = first.test_client().post("/api/requests", json={"gtin": SHIRT_M, "colour": "weiß"}).json
    shutdown(first)
    second = build(tmp_path, outbox, clock)
    try:
        client = second.test_client()
        login(client)
        assert [r["id"] for r in client.get("/api/requests").json["requests"]] == [made["id"]]
    finally:
        shutdown(second)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (None, "body"),
        ([1, 2], "body"),
        ({"size": "L"}, "gtin"),
        ({"gtin": 4012345010015, "size": "L"}, "gtin"),
        ({"gtin": "04012345999999", "size": "L"}, "gtin"),
        ({"gtin": SHIRT_M}, "size"),
        ({"gtin": SHIRT_M, "size": "XXXL"}, "size"),
        ({"gtin": SHIRT_M, "size": 42}, "size"),
        ({"gtin": SHIRT_M, "colour": ""}, "colour"),
    ],
)
def test_bad_size_requests_name_the_field(client: FlaskClient, outbox: Outbox, body: Any, field: str) -> None:
    answer = (
        client.post("/api/requests", json=body)
        if body is not None
        else client.post("/api/requests", data="not json", content_type="application/json")
    )
    assert answer.status_code == 400 and answer.json["field"] == field
    assert field in answer.json["error"]
    assert "size.requested" not in names(outbox)


def test_staff_screen_needs_the_pin(client: FlaskClient, clock: Clock) -> None:
    assert 'name="pin"' in client.get("/staff").text  # the address docs/architecture.md gives, no redirect
    assert client.post("/staff/login", data={"pin": "0000"}).status_code == 403
    login(client)
    assert 'id="requests"' in client.get("/staff/").text
    client.post("/staff/logout")
    assert client.get("/api/requests").status_code == 401


def test_wrong_pins_lock_the_login(client: FlaskClient, clock: Clock) -> None:
    for _ in range(5):
        assert client.post("/staff/login", data={"pin": "1111"}).status_code == 403
    assert client.post("/staff/login", data={"pin": PIN}).status_code == 429  # even the right one
    clock.advance(61)
    login(client)


def test_empty_pin_turns_staff_off(tmp_path: Path, outbox: Outbox, clock: Clock) -> None:
    app = build(tmp_path, outbox, clock, pin="")
    try:
        client = app.test_client()
        assert client.get("/staff").status_code == 404
        assert client.get("/staff/").status_code == 404
        assert client.post("/staff/login", data={"pin": ""}).status_code == 404
        assert client.get("/api/requests").status_code == 404
        assert client.post("/api/requests/x/claim").status_code == 404
    finally:
        shutdown(app)


# -- feedback, handoff, identify -------------------------------------------------------------


def test_feedback_rates_the_session_just_ended(kiosk: Flask, outbox: Outbox) -> None:
    client = kiosk.test_client()
    assert client.post("/api/feedback", json={"scale": "nps", "score": 9}).status_code == 409
    session_id = client.post("/api/session/touch").json["session"]["session_id"]
    client.post("/api/session/end")
    rated = client.post("/api/feedback", json={"scale": "csat", "score": 5, "touchpoint": "kiosk"})
    assert rated.status_code == 201 and rated.json == {"session_id": session_id}
    data = [e["data"] for e in events(outbox) if e["type"] == "touchpoint.feedback.submitted"]
    assert data == [{"session_id": session_id, "touchpoint": "kiosk", "scale": "csat", "score": 5}]
    assert client.get("/api/session").json == {"session": None}  # rating does not start a session


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"score": 5}, "scale"),
        ({"scale": "stars", "score": 5}, "scale"),
        ({"scale": "nps", "score": 11}, "score"),
        ({"scale": "csat", "score": 0}, "score"),
        ({"scale": "nps", "score": "9"}, "score"),
        ({"scale": "nps", "score": True}, "score"),
        ({"scale": "nps", "score": 9, "touchpoint": "x" * 8192}, "touchpoint"),  # HQ refuses a label over 200
        ({"scale": "nps", "score": 9, "touchpoint": 7}, "touchpoint"),
    ],
)
def test_bad_feedback_names_the_field(client: FlaskClient, body: dict[str, Any], field: str) -> None:
    answer = client.post("/api/feedback", json=body)
    assert answer.status_code == 400 and answer.json["field"] == field


def test_handoff_returns_token_url_and_qr(client: FlaskClient, outbox: Outbox) -> None:
    import segno

    made = client.post("/api/handoff", json={"gtins": [SHIRT_M]})
    assert made.status_code == 201
    body = made.json
    assert body["url"] == "https://touchpoint.example/h/" + body["token"] and len(body["token"]) >= 20
    assert body["qr_svg"].startswith("<svg") and "</svg>" in body["qr_svg"]
    assert segno.make(body["url"], error="m").svg_inline(scale=6, border=2) == body["qr_svg"]
    [data] = [e["data"] for e in events(outbox) if e["type"] == "touchpoint.handoff.created"]
    assert data["token"] == body["token"] and data["gtins"] == [SHIRT_M] and data["session_id"]
    for bad in ({"gtins": []}, {"gtins": "x"}, {"gtins": ["04012345999999"]}, {"gtins": [4012345010015]}, {}):
        answer = client.post("/api/handoff", json=bad)
        assert answer.status_code == 400 and answer.json["field"] in ("gtins", "gtin")


def test_identify_links_later_events_to_the_customer(client: FlaskClient, app: Flask, outbox: Outbox) -> None:
    answer = client.post("/api/identify", json={"customer": "c-7f3a9b2e41", "method": "qr"})
    assert answer.status_code == 200 and answer.json["session"]["identified"] is True
    client.get(f"/api/products/{SHIRT_M}?via=browse")
    stored = events(outbox)
    identified = next(e["data"] for e in stored if e["type"] == "touchpoint.customer.identified")
    assert identified["customer"] == "c-7f3a9b2e41" and identified["method"] == "qr"
    assert stored[-1]["data"]["customer"] == "c-7f3a9b2e41"
    again = client.post("/api/identify", json={"customer": "c-7f3a9b2e41", "method": "qr"})
    assert again.status_code == 200 and names(outbox).count("customer.identified") == 1
    other = client.post("/api/identify", json={"customer": "c-0000other", "method": "app"}).json["session"]
    assert other["session_id"] != answer.json["session"]["session_id"]  # never two customers in one session
    ended = [e["data"] for e in events(outbox) if e["type"] == "touchpoint.session.ended"]
    assert [e["reason"] for e in ended] == ["new-customer"]
    for bad, field in (
        ({"customer": "jane@example.com"}, "customer"),
        ({"customer": "short"}, "customer"),
        ({"customer": "c-7f3a9b2e41", "method": "fingerprint"}, "method"),
    ):
        rejected = client.post("/api/identify", json=bad)
        assert rejected.status_code == 400 and rejected.json["field"] == field


# -- status, health, metrics -----------------------------------------------------------------


def test_status_health_and_metrics(client: FlaskClient, app: Flask, outbox: Outbox) -> None:
    edge_of(app).on_read(TagRead(SHIRT_EPC, -50))
    status = client.get("/api/status").json
    assert status["outbox"]["depth"] == 3 and status["catalog"]["origin"] == "sample"
    assert status["device"] == {
        "store_id": "test-store",
        "device_id": "mirror-1",
        "role": "mirror",
        "zone": "cabin-1",
        "zones": ["cabin-1"],
    }
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json["components"]["outbox"] == "ok"
    assert client.get("/metrics").status_code == 401  # no [web] metrics_token in this config
    text = client.get("/metrics", environ_base={MONITORING: True}).text  # as on [web] metrics_listen
    assert 'touchpoint_edge_tags_present{zone="cabin-1"} 1.0' in text
    assert "touchpoint_edge_outbox_depth 3.0" in text
    assert 'touchpoint_edge_events_recorded_total{type="tag.arrived"} 1.0' in text
    assert "touchpoint_edge_sse_clients 0.0" in text
    outbox.close()  # the disk went away: health must say so
    broken = client.get("/healthz")
    assert broken.status_code == 503 and broken.json["status"] == "unavailable"


def test_status_reports_the_sync_agents_state(client: FlaskClient, tmp_path: Path) -> None:
    assert client.get("/api/status").json["sync"] is None  # no agent has run on this file yet
    table = StateTable(tmp_path / "edge.db")
    try:
        table.write(SyncState("connected", 41, 1.0, 2.0, "", None, 3.0))
    finally:
        table.close()
    synced = client.get("/api/status").json["sync"]
    assert synced["state"] == "connected" and synced["acked_upto"] == 41


def test_a_newer_downlinked_catalogue_is_picked_up_live(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    from contract import catalog as catalogue
    from sync.downlink import DownlinkError, DownlinkStore

    edge = edge_of(app)
    sub = edge.hub.subscribe()
    document = json.loads(catalogue.sample_path().read_text(encoding="utf-8"))
    document["version"] = "2026-12-01T00:00:00Z"
    document["products"][1]["price"] = "29.95"
    store = DownlinkStore(tmp_path / "edge.db")
    try:
        store.apply("catalog", json.dumps(document).encode())
        edge.refresh_catalog()
        assert client.get(f"/api/products/{SHIRT_M}").json["price"] == "29.95"
        assert client.get("/api/status").json["catalog"]["origin"] == "downlink"
        assert sub.queue.get_nowait().event == "catalog"
        document["version"] = "2026-12-02T00:00:00Z"
        document["products"][1]["stock"] = -4  # HQ sends a broken one: the good one stays
        with pytest.raises(DownlinkError, match=r"products\[1\]\.stock"):
            store.apply("catalog", json.dumps(document).encode())
        edge.refresh_catalog()
        assert client.get("/api/status").json["catalog"]["version"] == "2026-12-01T00:00:00Z"
    finally:
        store.close()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=16) | st.sampled_from([SHIRT_M, "L", "nps"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["gtin", "size", "colour", "scale", "score", "gtins", "customer", "method", "touchpoint"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)
POST_ROUTES = [
    "/api/requests",
    "/api/feedback",
    "/api/handoff",
    "/api/identify",
    "/api/session/touch",
    "/api/session/end",
]


def test_any_json_body_gets_an_answer_never_a_crash(app: Flask, outbox: Outbox) -> None:
    client = app.test_client()

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(POST_ROUTES), JSON_VALUES)
    def post(route: str, body: Any) -> None:
        answer = client.post(route, json=body)
        assert answer.status_code in (200, 201, 400, 409), answer.text
        if answer.status_code == 400:
            assert answer.json["field"] and answer.json["field"] in answer.json["error"]

    post()
    events(outbox)  # whatever was stored is a valid event


def test_a_loyalty_code_at_the_camera_identifies_the_session(tmp_path: Path, outbox: Outbox) -> None:
    import cv2

    from drivers import qr_samples

    folder = tmp_path / "camera"
    folder.mkdir()
    frame = qr_samples.to_bgr(qr_samples.render("TPC1:c-loyal-4711", scale=6))
    assert cv2.imwrite(str(folder / "frame-000.png"), frame)
    config = edge_config(tmp_path, device={"role": "kiosk"}, camera={"source": str(folder), "fps": 20})
    app = create_app(config, outbox=outbox)  # readers started: the camera thread does the work
    try:
        assert wait_until(lambda: "customer.identified" in names(outbox))
        stored = events(outbox)
        [identified] = [e["data"] for e in stored if e["type"] == "touchpoint.customer.identified"]
        assert identified["customer"] == "c-loyal-4711" and identified["method"] == "qr"
        assert stored[0]["type"] == "touchpoint.session.started"  # showing the code is a touch
        camera = app.test_client().get("/api/status").json["camera"]
        assert camera["codes_total"] >= 1 and camera["frames_total"] >= 1
    finally:
        shutdown(app)
    assert not any(tmp_path.rglob("*.jpg")) and sorted(p.name for p in folder.iterdir()) == ["frame-000.png"]


def test_a_bad_catalogue_file_fails_the_factory_with_the_row_named(tmp_path: Path) -> None:
    from contract.catalog import CatalogError

    bad = tmp_path / "catalog.json"
    bad.write_text('{"version": "1", "products": [{"gtin": "04012345010015"}]}', encoding="utf-8")
    config = edge_config(tmp_path / "device", catalog={"path": str(bad)})
    with pytest.raises(CatalogError, match=r"products\[0\]\.name"):
        create_app(config, start_readers=False)
    assert (tmp_path / "device" / "edge.db").exists()  # the outbox made its directory first
