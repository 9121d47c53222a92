"""A simulated web shop, app and till: digital touchpoints posted to HQ's ``POST /v1/events``.

``visit_events`` is pure: one shopper's visit to a channel as CloudEvents (times passed in).
``EventPoster`` sends a batch with the channel's bearer token. An HQ without the endpoint (404) is
reported once and retried quietly on the next visit, so the demo runs against an older HQ too.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from contract.envelope import make_event

log = logging.getLogger(__name__)

SOURCES = {"web": "/channels/web/shop", "app": "/channels/app/demo-app", "pos": "/channels/pos/demo-store/till-1"}
STEP = timedelta(seconds=2)  # between two clicks of one visit


@dataclass(frozen=True)
class Item:
    gtin: str
    price: str


@dataclass(frozen=True)
class Visit:
    """A known customer continues on a channel what began at a mirror or kiosk.

    ``handoff`` is the token of the QR code the edge showed (web and app only); ``store`` the
    store of a POS purchase.
    """

    channel: str
    customer: str
    anonymous_id: str
    items: tuple[Item, ...]
    order_id: str
    handoff: str | None = None
    store: str | None = None


def visit_events(visit: Visit, end: datetime) -> list[dict[str, Any]]:
    """The visit as events in time order, the last one (the purchase) at ``end``.

    web/app: hand-off redeemed (if any), page view, product views, login, cart adds, purchase;
    pos: the purchase alone, carrying the store.
    """
    if visit.channel not in SOURCES:
        raise ValueError(f"channel {visit.channel!r}: one of {', '.join(SOURCES)}")
    anonymous = {"anonymous_id": visit.anonymous_id}
    steps: list[tuple[str, dict[str, Any]]] = []
    if visit.channel != "pos":
        if visit.handoff:
            steps.append(("handoff.redeemed", {"token": visit.handoff, **anonymous}))
        steps.append(("page.viewed", {**anonymous, "page": "/"}))
        steps += [("product.viewed", {**anonymous, "gtin": item.gtin, "via": "browse"}) for item in visit.items]
        steps.append(("customer.logged_in", {**anonymous, "customer": visit.customer}))
        steps += [("cart.added", {**anonymous, "customer": visit.customer, "gtin": item.gtin}) for item in visit.items]
    purchase: dict[str, Any] = {
        "order_id": visit.order_id,
        "items": [{"gtin": item.gtin, "qty": 1, "price": item.price} for item in visit.items],
        "customer": visit.customer,
    }
    if visit.channel == "pos":
        purchase["store"] = visit.store
    else:
        purchase.update(anonymous)
    steps.append(("purchase.completed", purchase))
    first = end - STEP * (len(steps) - 1)
    source = SOURCES[visit.channel]
    return [make_event(name, data, source=source, time=first + STEP * i) for i, (name, data) in enumerate(steps)]


class Outcome(Enum):
    STORED = "stored"  # HQ answered 2xx
    NOT_ACCEPTED = "not accepted"  # HQ has no POST /v1/events (404)
    REFUSED = "refused"  # HQ answered with another error: bad token, invalid event
    UNREACHABLE = "unreachable"


class EventPoster:
    """Posts batches to ``{hq_url}v1/events``; logs each kind of trouble once, until it changes."""

    def __init__(self, hq_url: str, tokens: dict[str, str], timeout: float = 5.0) -> None:
        self.url = hq_url.rstrip("/") + "/v1/events"
        self.tokens = dict(tokens)
        self.timeout = timeout
        self.last: Outcome | None = None
        self.counts = {outcome: 0 for outcome in Outcome}

    def post(self, channel: str, events: list[dict[str, Any]]) -> Outcome:
        """Send one batch as ``channel``; never raises for HQ's answer, returns what happened."""
        request = urllib.request.Request(
            self.url,
            data=json.dumps(events).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.tokens[channel]}", "Content-Type": "application/json"},
        )
        detail = ""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
            outcome = Outcome.STORED
        except urllib.error.HTTPError as error:
            with error:
                detail = f"{error.code} {error.read()[:200].decode(errors='replace')}"
            outcome = Outcome.NOT_ACCEPTED if error.code == 404 else Outcome.REFUSED
        except (urllib.error.URLError, OSError) as error:
            outcome, detail = Outcome.UNREACHABLE, str(error)
        self.counts[outcome] += 1
        if outcome is not self.last:
            self._report(outcome, detail)
        self.last = outcome
        return outcome

    def _report(self, outcome: Outcome, detail: str) -> None:
        if outcome is Outcome.STORED:
            log.info("HQ accepts digital events at %s", self.url)
        elif outcome is Outcome.NOT_ACCEPTED:
            log.warning("HQ does not accept digital events yet (no POST %s); the web shop keeps trying", self.url)
        else:
            log.warning("web shop: HQ %s the batch: %s", outcome.value, detail)
