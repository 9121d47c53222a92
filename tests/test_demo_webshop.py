"""The demo's web shop: valid digital events, posted the way docs/architecture.md's ``POST /v1/events`` wants them."""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.envelope import EnvelopeError, event_name, validate
from touchpoint.demo.configs import Ports, devices
from touchpoint.demo.shoppers import CUSTOMERS, plan, sample_items
from touchpoint.demo.webshop import SOURCES, EventPoster, Item, Outcome, Visit, visit_events

END = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
TOKENS = {"web": "web-token-1234", "app": "app-token-1234", "pos": "pos-token-1234"}


class ContractHq(BaseHTTPRequestHandler):
    """``POST /v1/events`` as docs/architecture.md fixes it: bearer token per channel, one event or an array."""

    accepting = True
    received: list[tuple[str, dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/events" or not self.accepting:
            return self._answer(404, {"error": "not found"})
        channel = next((c for c, t in TOKENS.items() if self.headers.get("Authorization") == f"Bearer {t}"), None)
        if channel is None:
            return self._answer(401, {"error": "authentication"})
        document = json.loads(body)
        events = document if isinstance(document, list) else [document]
        try:
            for event in events:
                validate(event)
                if not event["source"].startswith(f"/channels/{channel}/"):
                    raise EnvelopeError(f"source {event['source']} is not channel {channel}")
        except EnvelopeError as error:
            return self._answer(400, {"error": str(error)})
        self.received.extend((channel, event) for event in events)
        return self._answer(202, {"accepted": len(events)})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads ``received`` instead."""


@pytest.fixture
def hq() -> Iterator[type[ContractHq]]:
    handler = type("Hq", (ContractHq,), {"received": [], "accepting": True})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()
    thread.join()


def a_visit(channel: str, handoff: str | None = "tok-abc") -> Visit:
    return Visit(
        channel=channel,
        customer="loyalty-0001",
        anonymous_id="anon-1",
        order_id="demo-1",
        items=(Item("04012345060010", "49.95"), Item("04012345061024", "29.00")),
        handoff=handoff if channel != "pos" else None,
        store="demo-store" if channel == "pos" else None,
    )


def test_a_web_visit_redeems_the_handoff_logs_in_and_buys_in_time_order() -> None:
    events = visit_events(a_visit("web"), END)
    names = [event_name(e) for e in events]
    assert names == [
        "handoff.redeemed",
        "page.viewed",
        "product.viewed",
        "product.viewed",
        "customer.logged_in",
        "cart.added",
        "cart.added",
        "purchase.completed",
    ]
    assert events[0]["data"] == {"token": "tok-abc", "anonymous_id": "anon-1"}
    assert events[-1]["time"] == "2026-11-24T10:00:00.000Z"
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert {e["source"] for e in events} == {SOURCES["web"]}
    assert events[-1]["data"]["items"] == [
        {"gtin": "04012345060010", "qty": 1, "price": "49.95"},
        {"gtin": "04012345061024", "qty": 1, "price": "29.00"},
    ]


def test_a_till_purchase_names_the_store_and_the_customer() -> None:
    (purchase,) = visit_events(a_visit("pos"), END)
    assert event_name(purchase) == "purchase.completed"
    assert purchase["data"]["store"] == "demo-store" and purchase["data"]["customer"] == "loyalty-0001"


def test_an_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="channel 'email'"):
        visit_events(a_visit("email"), END)


@given(st.integers(min_value=0, max_value=10_000), st.randoms(use_true_random=False))
def test_every_planned_visit_passes_hq_validation(n: int, rng: random.Random) -> None:
    shopper = plan(n, rng, devices(Ports.starting_at(8080)), sample_items())
    assert shopper.customer in CUSTOMERS and 1 <= len(shopper.items) <= 3
    handoff = None if shopper.channel == "pos" else "tok-" + str(n)
    visit = Visit(
        shopper.channel,
        shopper.customer,
        shopper.anonymous_id,
        shopper.items,
        f"o-{n}",
        handoff,
        "demo-store" if shopper.channel == "pos" else None,
    )
    events = visit_events(visit, END)
    for event in events:
        validate(event)
        assert event["data"].get("customer", shopper.customer) == shopper.customer
        assert "anonymous_id" in event["data"] or shopper.channel == "pos"
    assert events[-1]["data"]["customer"] == shopper.customer  # the purchase links to the customer


def test_posts_each_channel_with_its_token_and_hq_stores_them(hq: type[ContractHq]) -> None:
    poster = EventPoster(hq.url, TOKENS)  # type: ignore[attr-defined]
    for channel in ("web", "app", "pos"):
        assert poster.post(channel, visit_events(a_visit(channel), END)) is Outcome.STORED
    assert [c for c, _ in hq.received].count("pos") == 1
    assert {c for c, _ in hq.received} == {"web", "app", "pos"}
    assert poster.counts[Outcome.STORED] == 3


def test_a_wrong_token_is_reported_as_refused(hq: type[ContractHq]) -> None:
    poster = EventPoster(hq.url, {**TOKENS, "web": "stale"})  # type: ignore[attr-defined]
    assert poster.post("web", visit_events(a_visit("web"), END)) is Outcome.REFUSED
    assert hq.received == []


def test_an_hq_without_the_endpoint_is_logged_once_and_tried_again(
    hq: type[ContractHq], caplog: pytest.LogCaptureFixture
) -> None:
    hq.accepting = False
    poster = EventPoster(hq.url, TOKENS)  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO, logger="touchpoint.demo.webshop"):
        outcomes = [poster.post("web", visit_events(a_visit("web"), END)) for _ in range(3)]
        hq.accepting = True
        outcomes.append(poster.post("web", visit_events(a_visit("web"), END)))
    assert outcomes == [Outcome.NOT_ACCEPTED] * 3 + [Outcome.STORED]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("does not accept digital events yet" in m for m in messages) == 1
    assert any("accepts digital events" in m for m in messages)


def test_an_unreachable_hq_is_an_outcome_not_an_exception() -> None:
    from touchpoint.services import free_port

    poster = EventPoster(f"http://127.0.0.1:{free_port()}/", TOKENS, timeout=2)
    assert poster.post("app", visit_events(a_visit("app"), END)) is Outcome.UNREACHABLE
