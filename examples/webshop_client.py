"""Send a web shop's touchpoints to Touchpoint HQ: copy this file, no dependencies beyond Python 3.11.

Each call builds a CloudEvent (``touchpoint.<name>``, source ``/channels/web/<your shop>``, a fresh
id, the current time) and POSTs it to ``/v1/events`` with the web channel's bearer token from
HQ's ``[hq.tokens]``. ``flush()`` sends what is queued as one batch (at most 500 events, 1 MB);
HQ answers which events it accepted, which it already had and which it refused and why. Sending
the same event again is safe: HQ keeps each ``(source, id)`` once.

    shop = WebshopClient("https://hq.example", token="...", shop="shop.example")
    shop.page_viewed(anon, "home"); shop.product_viewed(anon, "04012345010008")
    shop.logged_in(anon, "cust-00042"); shop.purchased(anon, "A-1001", [("04012345010008", 1, "49.95")])
    print(shop.flush())

Run it to send a sample journey: ``python examples/webshop_client.py http://127.0.0.1:8090 TOKEN``.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from typing import Any

MAX_BATCH = 500


class WebshopClient:
    """Queues web events and sends them to HQ in batches."""

    def __init__(self, hq_url: str, token: str, shop: str = "shop", timeout: float = 10.0) -> None:
        self.url = hq_url.rstrip("/") + "/v1/events"
        self.token = token
        self.source = f"/channels/web/{shop}"
        self.timeout = timeout
        self.queue: list[dict[str, Any]] = []

    def event(self, name: str, data: dict[str, Any]) -> str:
        """Queue ``touchpoint.<name>``; returns its id. Sends a full batch at once."""
        moment = datetime.now(timezone.utc)
        event_id = str(uuid.uuid4())
        self.queue.append(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": self.source,
                "type": f"touchpoint.{name}",
                "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
                "datacontenttype": "application/json",
                "data": data,
            }
        )
        if len(self.queue) >= MAX_BATCH:
            self.flush()
        return event_id

    def page_viewed(self, anonymous_id: str, page: str, customer: str | None = None) -> str:
        return self.event("page.viewed", _with(customer, anonymous_id=anonymous_id, page=page))

    def product_viewed(self, anonymous_id: str, gtin: str, customer: str | None = None) -> str:
        return self.event("product.viewed", _with(customer, anonymous_id=anonymous_id, gtin=gtin, via="browse"))

    def added_to_cart(self, anonymous_id: str, gtin: str, customer: str | None = None) -> str:
        return self.event("cart.added", _with(customer, anonymous_id=anonymous_id, gtin=gtin))

    def logged_in(self, anonymous_id: str, customer: str) -> str:
        """Links this browser's anonymous id to the customer's pseudonymous token."""
        return self.event("customer.logged_in", {"anonymous_id": anonymous_id, "customer": customer})

    def handoff_redeemed(self, anonymous_id: str, token: str, customer: str | None = None) -> str:
        """The shopper opened a QR code from a fitting-room mirror: links the cabin visit to this browser."""
        return self.event("handoff.redeemed", _with(customer, anonymous_id=anonymous_id, token=token))

    def purchased(
        self, anonymous_id: str, order_id: str, items: list[tuple[str, int, str]], customer: str | None = None
    ) -> str:
        """``items`` are (gtin, quantity, price as a decimal string)."""
        lines = [{"gtin": gtin, "qty": qty, "price": price} for gtin, qty, price in items]
        return self.event(
            "purchase.completed", _with(customer, anonymous_id=anonymous_id, order_id=order_id, items=lines)
        )

    def flush(self) -> dict[str, Any]:
        """Send the queue; returns HQ's answer. Raises urllib.error.HTTPError on 400/401/413, and
        keeps the queue then, so a retry after fixing the cause loses nothing."""
        if not self.queue:
            return {"accepted": [], "duplicates": [], "rejected": []}
        request = urllib.request.Request(
            self.url,
            data=json.dumps(self.queue).encode("utf-8"),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            if error.code not in (207, 422):
                raise
            with error:
                answer = json.load(error)  # some events were refused: the answer says which and why
        self.queue.clear()
        return answer


def _with(customer: str | None, **data: Any) -> dict[str, Any]:
    """``data`` plus ``customer`` when the shopper is logged in."""
    return {**data, "customer": customer} if customer else data


def sample_journey(client: WebshopClient, anonymous_id: str, customer: str, handoff_token: str) -> list[str]:
    """A shopper who comes from a fitting-room QR code, browses, logs in and buys; returns the ids."""
    gtin = "04012345010008"
    return [
        client.handoff_redeemed(anonymous_id, handoff_token),
        client.page_viewed(anonymous_id, "home"),
        client.product_viewed(anonymous_id, gtin),
        client.added_to_cart(anonymous_id, gtin),
        client.logged_in(anonymous_id, customer),
        client.purchased(anonymous_id, f"web-{uuid.uuid4().hex[:8]}", [(gtin, 1, "49.95")], customer),
    ]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python examples/webshop_client.py HQ_URL WEB_TOKEN")
    shop = WebshopClient(sys.argv[1], sys.argv[2])
    sample_journey(shop, anonymous_id=str(uuid.uuid4()), customer="cust-demo-1", handoff_token=uuid.uuid4().hex)
    print(json.dumps(shop.flush(), indent=2))
