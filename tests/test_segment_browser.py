"""A shop's analytics.js (``@segment/analytics-next`` from tests/js, served by the test) in headless
Chromium against a running ``touchpoint hq``: the whole bridge from a mirror to an order.

A mirror session reaches HQ over MQTT with a hand-off; the shopper opens the hand-off URL on the
shop, whose page loads analytics.js pointed at HQ with the web write key: the page view alone
redeems the hand-off. They view and add a product, log in (``identify``) and sign up for the
newsletter (a custom event); later the app orders through analytics-python with the app's key.
The customer's journey must then hold all of it, the mirror session included.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Route, sync_playwright
from segment.analytics import Client as SegmentClient

from contract.envelope import edge_source, make_event
from contract.topics import DeviceTopics
from tests.hq_support import Peer, wait_until
from tests.hq_web_support import WEB_TOKEN
from tests.segment_support import APP_TOKEN, hq_process
from touchpoint.services import Mosquitto, free_port

pytestmark = pytest.mark.browser

BUNDLES = Path(__file__).parent / "js" / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MIRROR = DeviceTopics("store", "mirror-03")
TOKEN = "tok-7f3a9c"
CUSTOMER = "cust-00042"
GTIN = "04012345010015"
SHOP_PAGE = """<!doctype html><html lang="en"><head><title>Shop</title>
<script src="/analytics-next/bundles/index.js"></script></head><body><h1>Your garments</h1><script>
window.ready = AnalyticsNext.AnalyticsBrowser.load(
  {writeKey: %(key)s, cdnURL: location.origin,
   cdnSettings: {integrations: {"Segment.io": {apiKey: %(key)s, apiHost: %(api)s, protocol: "http"}}}},
  {retryQueue: false}
).then(([analytics]) => { window.analytics = analytics; return analytics.page("Handoff"); });
</script></body></html>"""


class Shop(http.server.BaseHTTPRequestHandler):
    """The shop's web server: a page at every path, analytics.js's files from tests/js."""

    page = b""

    def do_GET(self) -> None:
        if self.path.startswith("/analytics-next/bundles/"):
            file = BUNDLES / self.path.rsplit("/", 1)[1]
            body, kind = (file.read_bytes(), "text/javascript") if file.is_file() else (b"", "text/plain")
            self.answer(200 if body else 404, body, kind)
        else:
            self.answer(200, self.page, "text/html")

    def answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def shop() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def mirror_session(start: datetime) -> list[dict[str, object]]:
    """A cabin session that ends with a hand-off, as the edge's outbox sends it."""
    source = edge_source(MIRROR.store, MIRROR.device)
    tag = {"session_id": "sess-1", "zone": "cabin-1", "epc": "3034", "gtin": GTIN, "rssi": -50}
    steps = [
        ("session.started", {"session_id": "sess-1"}),
        ("tag.arrived", tag),
        ("handoff.created", {"session_id": "sess-1", "token": TOKEN, "gtins": [GTIN]}),
        ("session.ended", {"session_id": "sess-1", "duration_ms": 90_000}),
    ]
    return [
        make_event(name, data, source=source, seq=seq, time=start + timedelta(seconds=seq))
        for seq, (name, data) in enumerate(steps, 1)
    ]


def test_a_journey_from_the_mirror_through_the_handoff_page_to_an_app_order(
    tmp_path: Path, mosquitto: Mosquitto, shop: str
) -> None:
    start = datetime.now(timezone.utc) - timedelta(minutes=10)
    with hq_process(tmp_path, mosquitto.url, handoff_url=f"{shop}/h/") as hq:
        with Peer(mosquitto.url, [MIRROR.ack], client_id="berlin-01-mirror-03") as edge:
            edge.send(MIRROR.events, json.dumps(mirror_session(start)).encode())
            assert edge.ack(30) == 4

        Shop.page = (
            SHOP_PAGE % {"key": json.dumps(WEB_TOKEN), "api": json.dumps(hq.url.removeprefix("http://") + "/v1")}
        ).encode()
        elsewhere: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()

            def local_only(route: Route) -> None:
                if route.request.url.startswith("http://127.0.0.1:"):
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", local_only)
            page.goto(f"{shop}/h/{TOKEN}?utm_source=mirror")
            page.evaluate("window.ready")
            anonymous = page.evaluate("window.analytics.user().anonymousId()")
            page.evaluate(
                """async (gtin) => {
                    await window.analytics.track("Product Viewed", {sku: gtin, price: 49.95});
                    await window.analytics.track("Product Added", {sku: gtin, quantity: 1, price: 49.95});
                    await window.analytics.identify("%s", {email: "anna@example.com"});
                    await window.analytics.track("Newsletter Signed Up", {list: "weekly"});
                }"""
                % CUSTOMER,
                GTIN,
            )
            browser.close()
        assert elsewhere == [], "analytics.js reached beyond this machine"

        app = SegmentClient(APP_TOKEN, host=hq.url, max_retries=3)
        products = [{"sku": GTIN, "quantity": 1, "price": 49.95}]
        app.track(CUSTOMER, "Order Completed", {"order_id": "APP-1", "products": products}, anonymous_id="device-1")
        app.shutdown()

        wait_until(lambda: any(e["channel"] == "app" for e in hq.journey(CUSTOMER)), what="the app's order")
        journey = hq.journey(CUSTOMER)

    seen = [(e["channel"], e["type"].removeprefix("touchpoint.")) for e in journey]
    assert seen[:4] == [
        ("store", "session.started"),
        ("store", "tag.arrived"),
        ("store", "handoff.created"),
        ("store", "session.ended"),
    ], seen
    web = [name for channel, name in seen if channel == "web"]
    assert sorted(web) == sorted(
        ["page.viewed", "handoff.redeemed", "product.viewed", "cart.added", "customer.logged_in", "custom.tracked"]
    )
    assert seen[-1] == ("app", "purchase.completed")
    by_type = {e["type"]: e for e in journey}
    assert by_type["touchpoint.handoff.redeemed"]["data"] == {"token": TOKEN, "anonymous_id": anonymous}
    assert by_type["touchpoint.customer.logged_in"]["data"] == {"anonymous_id": anonymous, "customer": CUSTOMER}
    assert by_type["touchpoint.custom.tracked"]["data"]["event"] == "Newsletter Signed Up"
    assert "anna@example.com" not in json.dumps(journey)
