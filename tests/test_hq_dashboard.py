"""The dashboard: login (throttled, CSRF-checked), every page with a generated dataset, languages,
inline SVG charts; and one Playwright screenshot per page into docs/screenshots."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask import Flask

from contract.envelope import make_event
from contract.topics import DeviceTopics
from hq.core.intake import to_row
from hq.core.records import DeadLetter, DeviceBatch, DeviceStatus
from hq.core.report import Window
from hq.core.rollup_report import whole_hours
from hq.storage import open_storage
from hq.web import charts
from hq.web.dashboard import TEXT
from hq.web.reports import reports_of, warm_up
from hq.web.users import LoginThrottle
from tests.hq_dataset import Dataset, generate
from tests.hq_support import NOW, events, wait_until
from tests.hq_web_support import PASSWORD, SCRAPE, USER, csrf_of, hq_app, listening, live_hq, load, logged_in

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(seed=9, customers=80)


def fill(app: Flask, dataset: Dataset) -> None:
    storage = app.extensions["hq.storage"]
    load(storage, dataset)
    mirror = DeviceTopics("berlin-01", "mirror-01")
    (last,) = storage.fetchall(
        "SELECT contiguous_seq FROM devices WHERE store = ? AND device = ?", (mirror.store, mirror.device)
    )[0]
    late = [to_row(e, json.dumps(e), mirror, NOW) for e in events([last + 6, last + 7], mirror)]
    storage.store_device_batch(DeviceBatch(mirror, NOW, tuple(late), (), (last + 6, last + 7)))
    storage.record_status(DeviceStatus(mirror, "online", 3, "{}", NOW))
    storage.record_status(DeviceStatus(DeviceTopics("hamburg-02", "kiosk-01"), "offline", None, "{}", NOW))
    storage.store_dead_letters(
        [
            DeadLetter(
                NOW, "touchpoint/v1/berlin-01/mirror-01/events", "data.gtin: required for tag.arrived", b'{"type": "x"}'
            )
        ]
    )


@pytest.fixture
def app(tmp_path: Path, dataset: Dataset) -> Iterator[Flask]:
    with hq_app(tmp_path) as app:
        fill(app, dataset)
        app.config["HQ_REPORT_WAIT_S"] = 120  # pages in these tests show the finished report
        yield app


def period(dataset: Dataset) -> str:
    return f"from={dataset.start.date()}&to={(dataset.start + timedelta(days=45)).date()}"


def test_every_page_needs_a_login(app: Flask) -> None:
    client = app.test_client()
    for path in ("/", "/journey", "/devices", "/dead-letters"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")


def test_wrong_password_is_refused_and_repeated_failures_are_throttled(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    for _ in range(5):
        answer = client.post("/login", data={"name": USER, "password": "wrong", "csrf": csrf_of(client)})
        assert answer.status_code == 401 and "Benutzer oder Passwort falsch" in answer.text
    blocked = client.post("/login", data={"name": USER, "password": PASSWORD, "csrf": csrf_of(client)})
    assert blocked.status_code == 429
    assert client.get("/").status_code == 302


def test_a_login_form_without_the_csrf_token_is_refused(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    assert client.post("/login", data={"name": USER, "password": PASSWORD}).status_code == 400
    assert client.get("/").status_code == 302


def test_session_cookie_is_strict_and_logout_needs_the_token(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    answer = client.post("/login", data={"name": USER, "password": PASSWORD, "csrf": csrf_of(client)})
    cookie = answer.headers["Set-Cookie"]
    assert "SameSite=Strict" in cookie and "HttpOnly" in cookie
    assert client.post("/logout").status_code == 400
    assert client.get("/devices").status_code == 200
    assert client.post("/logout", data={"csrf": csrf_of(client)}).status_code == 302
    assert client.get("/devices").status_code == 302


def test_overview_shows_touchpoints_with_trends_funnel_and_ratings(app: Flask, dataset: Dataset) -> None:
    client = logged_in(app)
    page = client.get(f"/?{period(dataset)}&lang=en")
    assert page.status_code == 200
    html = page.text
    assert "Touchpoints in the period" in html and "Funnel" in html and "Size requests" in html
    assert html.count('<svg class="spark"') >= 5 and '<svg class="bars"' in html
    assert re.search(r"<b>[+-]\d+</b>", html)  # an NPS
    assert "berlin-01" in html and "n = " in html
    assert "<script" not in html and "http" not in html.split("<body>")[1]  # nothing from elsewhere
    filtered = client.get(f"/?{period(dataset)}&store=munich-03").text
    assert "munich-03" in filtered and "store/berlin-01/mirror" not in filtered.replace(" · ", "/")
    bad = client.get("/?from=soon")
    assert bad.status_code == 400 and "from:" in bad.text


def test_overview_says_computing_and_reloads_until_the_report_is_ready(app: Flask, dataset: Dataset) -> None:
    client = logged_in(app)
    app.config["HQ_REPORT_WAIT_S"] = 0
    first = client.get(f"/?{period(dataset)}&lang=en&store=berlin-01")
    assert first.status_code == 200 and "being computed" in first.text
    assert '<meta http-equiv="refresh" content="3">' in first.text
    app.config["HQ_REPORT_WAIT_S"] = 120
    assert "Touchpoints in the period" in client.get(f"/?{period(dataset)}&lang=en&store=berlin-01").text


def test_language_switch_is_remembered(app: Flask, dataset: Dataset) -> None:
    client = logged_in(app)
    german = client.get(f"/?{period(dataset)}").text
    assert "Touchpoints im Zeitraum" in german and 'lang="de"' in german
    client.get("/devices?lang=en")
    assert "Stores and devices" in client.get("/devices").text
    assert set(TEXT.strings("de")) == set(TEXT.strings("en"))


def test_journey_devices_and_dead_letter_pages(app: Flask, dataset: Dataset) -> None:
    client = logged_in(app)
    customer = next(e["data"]["customer"] for e in dataset.events if e["type"].endswith("customer.identified"))
    journey = client.get(f"/journey?customer={customer}&lang=en").text
    assert customer in journey and journey.count('<li class="channel-') >= 3 and "Customer identified" in journey
    assert client.get("/journey?customer=bad%20token").status_code == 400
    devices = client.get("/devices?lang=en").text
    assert "mirror-01" in devices and "online" in devices and "offline" in devices
    assert re.search(r'<span class="gap">\d+–\d+</span>', devices)
    letters = client.get("/dead-letters?lang=en").text
    assert "data.gtin: required for tag.arrived" in letters


def test_charts_are_plain_svg_with_escaped_labels() -> None:
    line = charts.sparkline([0, 2, 1, 4], label="<b>")
    assert line.startswith("<svg") and "&lt;b&gt;" in line and line.count(",") == 4
    assert charts.sparkline([]) == "" and charts.sparkline([0, 0]).count("polyline") == 1
    assert "&amp;" in charts.bars([("a & b", 3, "3"), ("c", 0, "0")])
    assert charts.score_bar(None, -100, 100) == "" and 'width="40.0"' in charts.score_bar(0, -100, 100)


def test_screenshots_of_every_page(tmp_path: Path, dataset: Dataset) -> None:
    from playwright.sync_api import sync_playwright

    config = listening(tmp_path)
    with hq_app(tmp_path) as app:
        fill(app, dataset)
    customer = next(e["data"]["customer"] for e in dataset.events if e["type"].endswith("customer.identified"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with live_hq(config) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/login?lang=en")
            page.fill("input[name=name]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            shots = {
                "overview": f"/?{period(dataset)}",
                "journey": f"/journey?customer={customer}",
                "devices": "/devices",
                "dead-letters": "/dead-letters",
            }
            for name, path in shots.items():
                page.goto(url + path)
                if name == "overview":
                    page.wait_for_selector("table.metrics", timeout=120_000)  # reloads until computed
                assert page.locator("header nav").is_visible()
                page.screenshot(path=str(SCREENSHOTS / f"hq-{name}.png"), full_page=True)
        finally:
            browser.close()
    assert all((SCREENSHOTS / f"hq-{name}.png").stat().st_size > 10_000 for name in shots)


def test_the_login_throttle_forgets_failures_after_its_window() -> None:
    throttle = LoginThrottle(limit=2, window_s=300)
    throttle.failed(["name:anna", "addr:1"], now=0.0)
    throttle.failed(["name:anna"], now=100.0)
    assert throttle.blocked(["name:anna"], now=299.0) and not throttle.blocked(["addr:1"], now=299.0)
    assert not throttle.blocked(["name:anna"], now=300.0)  # the first failure left the window


@pytest.mark.parametrize(
    "target, lands",
    [
        ("/devices?lang=en", "/devices?lang=en"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("https://evil.example", "/"),
    ],
)
def test_login_goes_back_only_to_this_site(app: Flask, target: str, lands: str) -> None:
    client = app.test_client()
    client.get("/login")
    answer = client.post(
        "/login", query_string={"next": target}, data={"name": USER, "password": PASSWORD, "csrf": csrf_of(client)}
    )
    assert answer.status_code == 302 and answer.headers["Location"] == lands


def test_warm_up_computes_the_default_report(app: Flask, dataset: Dataset) -> None:
    report = warm_up(app, dataset.end).result(timeout=120)
    hours = whole_hours(Window(dataset.end - timedelta(days=30), dataset.end))
    assert report.window == hours and report.touchpoints
    assert reports_of(app).get(hours, None).done()  # kept: the first visitor gets it at once


def test_the_web_role_warms_the_report_cache_before_anyone_asks(tmp_path: Path) -> None:
    config = listening(tmp_path)
    storage = open_storage(config.database.url)
    recent = make_event(
        "page.viewed",
        {"anonymous_id": "a-1", "page": "home"},
        source="/channels/web",
        time=datetime.now(timezone.utc) - timedelta(hours=2),
    )
    storage.store_events([to_row(recent, json.dumps(recent), None, datetime.now(timezone.utc))])
    storage.close()

    def computed(base: str) -> float:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/metrics", headers=SCRAPE)) as answer:
            found = re.search(r"^touchpoint_hq_report_seconds_count (\S+)$", answer.read().decode(), re.M)
        assert found, "the histogram is exported"
        return float(found[1])

    with live_hq(config) as base:
        wait_until(lambda: computed(base) > 0, what="the default report computed without a request")
