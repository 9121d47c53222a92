"""Segment's and RudderStack's own Python SDKs, unchanged, against a running ``touchpoint hq``.

The shops' libraries are the contract here: whatever they send (Basic auth, gzip, their batch
shape and timestamps) must land as touchpoints, a real retry must store nothing twice, and a
wrong write key must be the 401 the SDK reports.
"""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient
from segment.analytics.request import APIError

from tests.hq_web_support import WEB_TOKEN
from tests.segment_support import APP_TOKEN, RunningHq, hq_process
from touchpoint.services import free_port

CUSTOMER = "cust-00042"
GTIN = "04012345010008"


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[RunningHq]:
    with hq_process(tmp_path) as running:
        yield running


def names(journey: list[dict[str, Any]]) -> list[str]:
    return [event["type"].removeprefix("touchpoint.") for event in journey]


def seconds_ago(start: float) -> Callable[[float], datetime]:
    """Client timestamps a second apart, so the journey's time order is the order sent."""
    base = datetime.now(timezone.utc) - timedelta(seconds=start)
    return lambda offset: base + timedelta(seconds=offset)


def segment(url: str, key: str = WEB_TOKEN, **options: Any) -> SegmentClient:
    return SegmentClient(key, host=url, max_retries=3, **options)


def test_analytics_python_page_views_products_and_an_order_become_the_customers_journey(hq: RunningHq) -> None:
    errors: list[Exception] = []
    client = segment(hq.url, on_error=lambda error, batch: errors.append(error))
    at = seconds_ago(60)
    traits = {"email": "anna@example.com", "preferred_size": "M"}
    client.identify(CUSTOMER, traits, anonymous_id="anon-1", timestamp=at(0))
    page = {"url": "https://shop.example/p/1", "path": "/p/1"}
    client.page(CUSTOMER, name="Product", properties=page, timestamp=at(1))
    client.track(CUSTOMER, "Product Viewed", {"sku": GTIN, "price": 49.95, "name": "Hemd"}, timestamp=at(2))
    client.track(CUSTOMER, "Product Added", {"sku": GTIN, "quantity": 2, "price": 49.95}, timestamp=at(3))
    order = {"order_id": "A-1", "total": 99.9, "products": [{"sku": GTIN, "quantity": 2, "price": 49.95}]}
    client.track(CUSTOMER, "Order Completed", order, timestamp=at(4))
    client.track(CUSTOMER, "Newsletter Signed Up", {"list": "weekly"}, timestamp=at(5))
    client.shutdown()
    assert errors == []
    journey = hq.journey(CUSTOMER)
    assert names(journey) == [
        "customer.logged_in",
        "page.viewed",
        "product.viewed",
        "cart.added",
        "purchase.completed",
        "custom.tracked",
    ]
    assert all(event["channel"] == "web" for event in journey)
    logged_in, page, viewed, added, order, custom = (event["data"] for event in journey)
    assert logged_in == {"anonymous_id": "anon-1", "customer": CUSTOMER}  # no trait is on the allow-list
    assert page["page"] == "product" and page["path"] == "/p/1"
    assert viewed["gtin"] == GTIN and viewed["via"] == "browse"
    assert added["qty"] == 2
    assert order["order_id"] == "A-1" and order["items"][0] == {"gtin": GTIN, "qty": 2, "price": 49.95, "sku": GTIN}
    assert custom["event"] == "Newsletter Signed Up" and custom["properties"] == {"list": "weekly"}
    assert journey[-1]["phase"] == "consideration"
    report = {row["touchpoint"]: row for row in hq.get("/v1/touchpoints")["touchpoints"]}
    product = report["web/product/page"]
    assert (product["product_sessions"], product["converted"], product["conversion"]) == (1, 1, 1.0)
    assert report["web/newsletter-signed-up/event"]["sessions"] == 1


class DropsFirstAnswer(http.server.BaseHTTPRequestHandler):
    """Forwards every POST to HQ; the first one's answer is lost, as on a flaky network."""

    target = ""
    forwarded = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(self.target + self.path, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, payload = answer.status, answer.read()
        with DropsFirstAnswer.lock:
            DropsFirstAnswer.forwarded += 1
            first = DropsFirstAnswer.forwarded == 1
        if first:
            self.close_connection = True  # HQ stored it; the SDK sees the connection drop and retries
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_sdk_retry_of_a_delivered_batch_stores_each_message_once(hq: RunningHq) -> None:
    DropsFirstAnswer.target, DropsFirstAnswer.forwarded = hq.url, 0
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), DropsFirstAnswer)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        errors: list[Exception] = []
        client = segment(f"http://127.0.0.1:{proxy.server_address[1]}", on_error=lambda e, b: errors.append(e))
        client.track(CUSTOMER, "Product Viewed", {"sku": GTIN}, message_id="retried-1")
        client.track(CUSTOMER, "Wishlist Shared", message_id="retried-2")
        client.shutdown()
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert errors == []
    assert DropsFirstAnswer.forwarded >= 2, "the SDK did not retry"
    assert [event["id"] for event in hq.journey(CUSTOMER)] == ["retried-1", "retried-2"]


def test_a_wrong_write_key_is_a_401_the_sdk_reports(hq: RunningHq) -> None:
    errors: list[Exception] = []
    client = segment(hq.url, key="not-a-channel-token", on_error=lambda error, batch: errors.append(error))
    client.track(CUSTOMER, "Product Viewed", {"sku": GTIN})
    client.shutdown()
    assert [getattr(error, "status", None) for error in errors] == [401]
    assert isinstance(errors[0], APIError)
    assert hq.journey(CUSTOMER) == []


def test_rudderstack_sends_gzip_from_the_app_and_its_order_counts_for_the_app(hq: RunningHq) -> None:
    errors: list[Exception] = []
    client = RudderClient(APP_TOKEN, host=hq.url, gzip=True, on_error=lambda error, batch: errors.append(error))
    at = seconds_ago(60)
    client.screen(CUSTOMER, name="Checkout", anonymous_id="device-7", timestamp=at(0))
    order = {"order_id": "APP-9", "products": [{"product_id": GTIN, "quantity": 1, "price": 59.0}]}
    client.track(CUSTOMER, "Order Completed", order, anonymous_id="device-7", timestamp=at(1))
    client.track(CUSTOMER, "Order Refunded", {"order_id": "APP-9"}, anonymous_id="device-7", timestamp=at(2))
    client.flush()
    client.join()
    assert errors == []
    journey = hq.journey(CUSTOMER)
    assert names(journey) == ["page.viewed", "purchase.completed", "custom.tracked"]
    assert {event["channel"] for event in journey} == {"app"}
    assert journey[0]["data"]["page"] == "checkout" and journey[0]["phase"] == "purchase"
    assert journey[1]["data"]["items"] == [{"gtin": GTIN, "qty": 1, "price": 59.0, "product_id": GTIN}]
    places = {row["touchpoint"] for row in hq.get("/v1/touchpoints")["touchpoints"]}
    assert {"app/checkout/page", "app/order-refunded/event"} <= places
