"""The mirror, kiosk and staff screens in headless Chromium against the real edge server (cheroot),
fed by a simulated M100 reader on a pseudo-terminal and a camera reading a folder of frames.

Every test also proves that the browser asked no host but the device, and the screens it visits
pass the page-weight, touch-target and contrast checks of ``tests/ui_checks.py``. The screenshots
in ``docs/screenshots/`` are written here.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zxingcpp
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from contract.envelope import validate
from drivers import encode_sgtin96, qr_samples
from drivers.simulator import Simulator
from kiosk.edge import EXTENSION
from kiosk.server import EdgeServer
from sync.downlink import DownlinkStore
from tests.kiosk_support import edge_config
from tests.ui_checks import Requests, check_screen, screenshot

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PORTRAIT = {"width": 720, "height": 1280}  # a 1080x1920 screen at device scale 1.5 ...
SCALE = 0.75  # ... saved at 540x960 to keep the PNGs small
PIN = "4711"
SHIRT_M = "04012345010015"  # LS-100 blau M: M and XL in stock in blau, weiß and salbei in every size
SHIRT_EPC = encode_sgtin96(SHIRT_M, 42, 7)
JEANS_EPC = encode_sgtin96("04012345030013", 7, 7)
HANDOFF_URL = "https://shop.test/h/"
CUSTOMER = "c-loyal-4711"

expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Chromium for the whole run: launching costs more than all the pages together."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Pages in fresh browser contexts; afterwards, every request any of them made went to 127.0.0.1."""
    seen = Requests()
    contexts = []

    def opener(url: str, locale: str = "de-DE") -> Page:
        context = browser.new_context(viewport=PORTRAIT, device_scale_factor=SCALE, locale=locale)
        seen.watch(context)
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        return page

    yield opener
    for context in contexts:
        context.close()
    assert seen.urls and seen.foreign() == []


@pytest.fixture
def start_edge(tmp_path: Path, simulator: Simulator) -> Iterator[Callable[..., EdgeServer]]:
    """Start the edge server as a mirror or kiosk on a free port, reader on the simulator's pty."""
    servers: list[EdgeServer] = []

    def starter(role: str = "mirror", **sections: dict[str, Any] | list[dict[str, Any]]) -> EdgeServer:
        defaults: dict[str, dict[str, Any] | list[dict[str, Any]]] = {
            "device": {"role": role},
            "web": {"listen": "127.0.0.1:0", "threads": 8, "handoff_url": HANDOFF_URL},
            "reader": {"protocol": "m100", "url": simulator.path, "zone": "cabin-1", "departure_s": 0.5},
            "session": {"cabin_empty_s": 5, "kiosk_idle_s": 5},  # the shortest the config allows
            "staff": {"pin": PIN},
        }
        if "readers" in sections:  # [[readers]] replace the single [reader]
            del defaults["reader"]
        config = edge_config(tmp_path, **{**defaults, **sections})
        server = EdgeServer(config)
        server.start()
        servers.append(server)
        return server

    yield starter
    for server in servers:
        server.stop()


@pytest.fixture
def shirt_in_cabin(
    start_edge: Callable[..., EdgeServer], simulator: Simulator, open_page: Callable[..., Page]
) -> tuple[EdgeServer, Page]:
    """A mirror's screen showing the blue shirt just hung up in its cabin."""
    server = start_edge()
    page = open_page(server.url)
    simulator.present(SHIRT_EPC)
    expect(page.locator(".garment")).to_have_count(1)
    return server, page


def events(server: EdgeServer, name: str) -> list[dict[str, Any]]:
    """The stored events of one type, each validated the way HQ validates it."""
    assert server.app is not None
    outbox = server.app.extensions[EXTENSION].outbox
    stored = [validate(json.loads(p.body)) for p in outbox.pending(limit=10_000, max_bytes=10**9)]
    return [e["data"] for e in stored if e["type"] == f"touchpoint.{name}"]


def test_garments_appear_as_cards_and_leave_with_the_garment(
    start_edge: Callable[..., EdgeServer], simulator: Simulator, open_page: Callable[..., Page]
) -> None:
    server = start_edge()
    page = open_page(server.url)
    expect(page.locator("#empty")).to_be_visible()
    simulator.present(SHIRT_EPC, rssi=-45)
    shirt = page.locator(f'.garment[data-epc="{SHIRT_EPC}"]')
    expect(shirt.locator("h2")).to_have_text("Leinenhemd")
    expect(shirt.locator(".price")).to_have_text("49,95\u00a0€")
    expect(shirt.locator(".chips").first).to_contain_text("M")  # this one, marked as theirs
    expect(shirt.get_by_role("button", name="Bring mir XL")).to_be_visible()
    expect(shirt.get_by_role("button", name="Bring mir weiß M")).to_be_visible()  # colours in stock
    expect(page.locator("#empty")).to_be_hidden()
    simulator.present(JEANS_EPC, rssi=-50)
    expect(page.locator(".garment")).to_have_count(2)
    expect(page.locator("#suggestions .tile")).to_have_count(4)  # before HQ's message: catalogue styles
    check_screen(page)
    screenshot(page, "mirror-cards-de")

    page.goto(server.url + "?lang=en")  # the cards come back from /api/presence, in English
    expect(page.locator(".garment h2")).to_have_text(["Linen shirt", "Slim-fit jeans"])
    expect(page.locator("#suggest h2")).to_have_text("Goes well with")
    check_screen(page)
    screenshot(page, "mirror-cards-en")

    simulator.remove(JEANS_EPC)
    expect(page.locator(".garment")).to_have_count(1)
    simulator.remove(SHIRT_EPC)
    expect(page.locator(".garment")).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    assert [e["gtin"] for e in events(server, "product.viewed")] == [SHIRT_M, "04012345030013"]


def test_a_size_request_reaches_staff_and_its_state_shows_on_the_mirror(
    start_edge: Callable[..., EdgeServer], simulator: Simulator, open_page: Callable[..., Page]
) -> None:
    server = start_edge()
    mirror = open_page(server.url)
    staff = open_page(server.url + "staff")
    staff.fill("#pin", PIN)
    staff.get_by_role("button", name="Öffnen").click()
    expect(staff.locator("#no-requests")).to_be_visible()
    simulator.present(SHIRT_EPC)
    expect(staff.locator(".zone li")).to_contain_text(["Leinenhemd"])  # the live scan, by zone

    mirror.get_by_role("button", name="Bring mir XL").click()
    state = mirror.locator(".request .state")
    expect(state).to_have_text("Angefragt")
    ticket = staff.locator(".ticket")
    expect(ticket.locator(".want")).to_have_text("blau · XL")
    expect(ticket).to_contain_text("cabin-1")
    expect(ticket.locator(".waited")).to_contain_text(" s")
    check_screen(staff)
    screenshot(staff, "staff-queue-de")
    staff.goto(server.url + "staff/?lang=en")
    expect(staff.locator(".ticket .badge")).to_have_text("open")
    expect(staff.locator("#health")).to_contain_text("connected")
    check_screen(staff)
    screenshot(staff, "staff-queue-en")

    staff.set_viewport_size({"width": 360, "height": 740})  # a small phone: nothing wider than the screen
    assert staff.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    check_screen(staff)
    screenshot(staff, "staff-phone-en")

    staff.get_by_role("button", name="I'll take it").click()
    expect(state).to_have_text("Unterwegs zu dir")
    staff.get_by_role("button", name="Brought").click()
    expect(state).to_have_text("Gebracht")
    expect(staff.locator(".ticket")).to_have_count(0)
    [asked] = events(server, "size.requested")
    [fulfilled] = events(server, "size.fulfilled")
    assert asked["request_id"] == fulfilled["request_id"] and asked["session_id"] == fulfilled["session_id"]
    assert (asked["gtin"], asked["requested_gtin"], asked["size"]) == (SHIRT_M, "04012345010039", "XL")


def test_the_hand_off_qr_code_opens_the_shop_with_the_token(shirt_in_cabin: tuple[EdgeServer, Page]) -> None:
    server, page = shirt_in_cabin
    page.get_by_role("button", name="Mitnehmen aufs Handy").click()
    code = page.locator("#qr svg")
    expect(code).to_be_visible()
    check_screen(page)
    png = np.frombuffer(code.screenshot(), dtype=np.uint8)
    [found] = zxingcpp.read_barcodes(cv2.imdecode(png, cv2.IMREAD_GRAYSCALE))
    [made] = events(server, "handoff.created")
    assert found.text == HANDOFF_URL + made["token"] == page.locator("#qr").get_attribute("data-url")
    assert made["gtins"] == [SHIRT_M] and made["session_id"]


def test_a_loyalty_code_at_the_camera_makes_the_kiosk_personal(
    tmp_path: Path, start_edge: Callable[..., EdgeServer], open_page: Callable[..., Page]
) -> None:
    camera = tmp_path / "camera"
    camera.mkdir()
    assert cv2.imwrite(str(camera / "frame-000.png"), np.full((480, 640), 230, np.uint8))  # nobody there
    recommendations = {
        "version": "2026-11-23T10:00:00.000Z",
        "store": "test-store",
        "items": {"JN-300": ["LS-100"]},
        "segments": {"frequent": {"customers": 12, "top": ["JA-600", "PU-400"]}},
        "customers": {CUSTOMER: {"segment": "frequent", "sizes": ["L"]}},
    }
    downlink = DownlinkStore(tmp_path / "edge.db")
    try:
        assert downlink.apply("recommendations", json.dumps(recommendations).encode())
    finally:
        downlink.close()
    server = start_edge("kiosk", camera={"source": str(camera), "fps": 10})
    page = open_page(server.url)
    expect(page.locator("#attract-name")).not_to_be_empty()
    check_screen(page)
    screenshot(page, "kiosk-attract-de")
    page.goto(server.url + "?lang=en")
    expect(page.locator("#attract-name")).not_to_be_empty()
    screenshot(page, "kiosk-attract-en")

    frame = qr_samples.to_bgr(qr_samples.render(f"TPC1:{CUSTOMER}", scale=6))
    assert cv2.imwrite(str(camera / "frame-001.png"), frame)  # the shopper holds up their app
    expect(page.locator("#welcome")).to_have_text("Welcome back!")
    tiles = page.locator("#personal .tile")
    expect(tiles).to_have_count(4)
    # the segment's favourites first, each in the customer's size
    assert [tiles.nth(i).get_attribute("data-gtin") for i in range(2)] == ["04012345060027", "04012345040029"]
    [identified] = events(server, "customer.identified")
    assert (identified["customer"], identified["method"]) == (CUSTOMER, "qr")


def test_a_tag_on_the_kiosk_pad_opens_its_product(
    start_edge: Callable[..., EdgeServer], simulator: Simulator, open_page: Callable[..., Page]
) -> None:
    server = start_edge("kiosk")
    page = open_page(server.url)
    expect(page.locator("#attract")).to_be_visible()
    simulator.present(JEANS_EPC)
    expect(page.locator("#detail h2")).to_have_text("Jeans Slim Fit")
    expect(page.locator("#attract")).to_be_hidden()
    assert [(e["gtin"], e["via"]) for e in events(server, "product.viewed")] == [("04012345030013", "tag")]


def test_a_garment_arriving_while_the_first_snapshot_loads_stays_on_screen(
    start_edge: Callable[..., EdgeServer], simulator: Simulator, browser: Browser
) -> None:
    """The stream's arrival is newer than a snapshot asked for before it: the card must stay."""
    server = start_edge()
    context = browser.new_context(viewport=PORTRAIT, device_scale_factor=SCALE, locale="de-DE")
    held = []

    def stale_snapshot(route: Route) -> None:
        if held:  # only the first snapshot is held back
            route.continue_()
            return
        held.append(route.fetch())  # the cabin as it is now: empty
        simulator.present(SHIRT_EPC)
        deadline = time.monotonic() + 10
        while SHIRT_EPC not in urllib.request.urlopen(server.url + "api/presence").read().decode():
            assert time.monotonic() < deadline, "the simulated reader never reached the edge"
            time.sleep(0.05)
        time.sleep(0.5)  # let the stream deliver the arrival before the stale answer lands
        route.fulfill(response=held[0])

    try:
        context.route("**/api/presence", stale_snapshot)
        page = context.new_page()
        page.goto(server.url)
        expect(page.locator(f'.garment[data-epc="{SHIRT_EPC}"]')).to_have_count(1)
        page.wait_for_timeout(500)  # the stale snapshot has been applied by now
        expect(page.locator(".garment")).to_have_count(1)
        assert held, "the snapshot was never requested"
    finally:
        context.close()


def test_the_survey_answer_lands_in_the_outbox(shirt_in_cabin: tuple[EdgeServer, Page]) -> None:
    server, page = shirt_in_cabin
    page.get_by_role("button", name="Ich bin fertig").click()
    expect(page.locator("#survey-question")).to_have_text("Wie wahrscheinlich empfiehlst du uns weiter?")
    check_screen(page)
    screenshot(page, "mirror-survey-de")
    page.get_by_role("button", name="Überspringen").click()  # clears the screen for the next shopper

    page.goto(server.url + "?lang=en")  # the garment is still there: a new shopper's session
    expect(page.locator(".garment")).to_have_count(1)
    page.get_by_role("button", name="I'm done").click()
    expect(page.locator("#survey-question")).to_be_visible()
    screenshot(page, "mirror-survey-en")
    page.get_by_role("button", name="9", exact=True).click()
    expect(page.locator("#thanks")).to_have_text("Thank you! See you soon.")
    ended = events(server, "session.ended")
    assert [e["reason"] for e in ended] == ["shopper", "shopper"]
    [answer] = events(server, "feedback.submitted")
    assert answer == {"session_id": ended[1]["session_id"], "touchpoint": "mirror", "scale": "nps", "score": 9}


def test_kiosk_product_shows_stock_by_size_and_what_goes_with_it(
    start_edge: Callable[..., EdgeServer], open_page: Callable[..., Page]
) -> None:
    server = start_edge("kiosk", session={"kiosk_idle_s": 600})  # screenshots take their time
    page = open_page(server.url)
    for lang, name in (("de", "Jeans Slim Fit"), ("en", "Slim-fit jeans")):
        page.goto(f"{server.url}?lang={lang}")
        if lang == "de":
            page.locator("#attract").click()  # afterwards the session runs: no attract loop
        page.locator("#search input").fill("jeans")
        page.locator("#search button").click()
        expect(page.locator("#list-heading")).to_have_text({"de": "Suchergebnisse", "en": "Search results"}[lang])
        page.locator("#results .tile").first.click()
        expect(page.locator("#detail h2")).to_have_text(name)
        stock = page.locator("#detail .chips").first.locator("li")
        expect(stock).to_contain_text(["30/32", "32/32", "34/32", "36/32"])  # indigo, every size in stock
        expect(stock.first.locator(".count")).to_have_text({"de": "2 vorrätig", "en": "2 in stock"}[lang])
        expect(page.locator("#detail .tile")).to_have_count(4)
        check_screen(page)
        screenshot(page, f"kiosk-product-{lang}")
    assert [e["via"] for e in events(server, "product.viewed")] == ["search", "search"]
    assert len(events(server, "session.started")) == 1  # a language switch is the same shopper


def test_idle_clears_every_trace_of_the_shopper(
    start_edge: Callable[..., EdgeServer], open_page: Callable[..., Page]
) -> None:
    server = start_edge("kiosk")
    page = open_page(server.url + "?lang=en")
    page.evaluate("localStorage.setItem('probe', '1'); sessionStorage.setItem('probe', '1'); window.probe = 1")
    page.locator("#attract").click()
    page.locator("#search input").fill("jeans")
    page.locator("#search button").click()
    expect(page.locator("#list-heading")).to_have_text("Search results")
    page.locator("#results .tile").first.click()
    expect(page.locator("#detail h2")).to_have_text("Slim-fit jeans")
    assert any(c["name"] == "lang" for c in page.context.cookies())

    expect(page.locator("#attract")).to_be_visible(timeout=30_000)  # the idle timeout ended the session
    expect(page.locator("#attract .attract-title")).to_have_text("Entdecke unsere Kollektion")  # default language
    assert page.evaluate("window.probe") is None  # a new document: no DOM or JS state survives
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.context.cookies() == []
    assert page.locator("#detail").inner_html() == "" and page.locator("#search input").input_value() == ""
    assert [e["reason"] for e in events(server, "session.ended")] == ["idle"]


def test_staff_see_every_zone_with_the_tags_in_it_and_their_signal(
    start_edge: Callable[..., EdgeServer], open_page: Callable[..., Page]
) -> None:
    with Simulator("mercury", rate=50, seed=6) as module:
        module.start()
        zones = {"1": "cabin-1", "2": "cabin-2", "3": "return-rail"}
        server = start_edge(readers=[{"protocol": "mercury", "url": module.path, "zones": zones, "min_reads": 2}])
        module.present(SHIRT_EPC, rssi=-45, antenna=1)
        module.present(SHIRT_EPC, rssi=-72, antenna=2)  # next door hears it too: shown in cabin 1 only
        module.present(JEANS_EPC, rssi=-60, antenna=3)
        staff = open_page(server.url + "staff")
        staff.fill("#pin", PIN)
        staff.get_by_role("button", name="Öffnen").click()
        cabin_1, cabin_2, rail = (staff.locator(f'.zone[data-zone="{zone}"]') for zone in zones.values())
        expect(cabin_1.locator("li")).to_have_count(1)
        expect(cabin_1.locator("li")).to_contain_text("Leinenhemd")
        expect(cabin_1.locator(".rssi")).to_have_text(re.compile(r"^-4[2-8] dBm$"))
        expect(cabin_2.locator("h3")).to_have_text("cabin-2 · leer")
        expect(rail.locator("li .rssi")).to_have_text(re.compile(r"^-(5[7-9]|6[0-3]) dBm$"))
        check_screen(staff)
        screenshot(staff, "staff-zones-de")
        staff.goto(server.url + "staff/?lang=en")
        expect(cabin_2.locator("h3")).to_have_text("cabin-2 · empty")
        expect(cabin_1.locator(".signal")).to_have_attribute("aria-label", re.compile(r"^signal -4[2-8] dBm$"))
        expect(staff.locator("#health")).to_contain_text("weak reads ignored")
        check_screen(staff)
        screenshot(staff, "staff-zones-en")
        assert staff.locator(".zone").count() == 3
