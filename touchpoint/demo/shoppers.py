"""Simulated loyalty customers whose journeys cross the store and the digital channels.

A customer scans their loyalty code at the mirror or the kiosk (``POST /api/identify``), looks at
a garment, takes the hand-off QR code to the phone (``POST /api/handoff``), and then, with the same
customer token, logs in and buys in the web shop or the app, or pays at the till. HQ links these
into one journey. ``plan`` is pure (randomness passed in); ``Shoppers`` does the HTTP calls.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from contract import catalog
from touchpoint.demo.configs import STORE, Device
from touchpoint.demo.webshop import EventPoster, Item, Visit, visit_events

log = logging.getLogger(__name__)

CUSTOMERS = tuple(f"loyalty-{n:04d}" for n in range(1, 13))
CHANNEL_WEIGHTS = {"web": 5, "app": 3, "pos": 2}


@dataclass(frozen=True)
class Plan:
    """What shopper number ``n`` does: where they identify, which garments, which channel next."""

    n: int
    customer: str
    device: Device
    items: tuple[Item, ...]
    channel: str
    anonymous_id: str


def plan(n: int, rng: random.Random, devices: Sequence[Device], items: Sequence[Item]) -> Plan:
    """Shopper ``n``: a loyalty customer (they come back), a device, 1-3 garments, a channel."""
    channel = rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0]
    return Plan(
        n=n,
        customer=rng.choice(CUSTOMERS),
        device=devices[n % len(devices)],
        items=tuple(rng.sample(list(items), rng.randint(1, 3))),
        channel=channel,
        anonymous_id=f"anon-{rng.getrandbits(64):016x}",
    )


def sample_items() -> tuple[Item, ...]:
    """The bundled catalogue's garments with their prices."""
    products = catalog.read_file(catalog.sample_path(), "sample").products
    return tuple(Item(p.gtin, str(p.price)) for p in products)


def call(url: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """One JSON request (POST when ``body`` is given); raises urllib's errors."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class Shoppers:
    """A background thread that sends one shopper every ``interval_s`` through store and channel."""

    name = "shoppers"

    def __init__(
        self, devices: Sequence[Device], poster: EventPoster, interval_s: float = 6.0, seed: int | None = None
    ) -> None:
        self.devices = tuple(devices)
        self.poster = poster
        self.interval_s = interval_s
        self.rng = random.Random(seed)
        self.items = sample_items()
        self.journeys = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        self._thread = threading.Thread(target=self._run, name="shoppers", daemon=True)
        self._thread.start()
        return (
            f"{len(CUSTOMERS)} loyalty customers: scan at {' or '.join(d.role for d in self.devices)}, "
            f"then web/app/till, one every {self.interval_s:.0f} s"
        )

    def exited(self) -> int | None:
        """A thread that logs its errors and goes on: it never ends on its own."""
        return None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None

    def journey(self, shopper: Plan) -> None:
        """In store, then on the channel; raises urllib's errors when an edge does not answer."""
        base = shopper.device.url + "api/"
        call(base + "identify", {"customer": shopper.customer, "method": "qr"})
        for item in shopper.items:
            call(f"{base}products/{item.gtin}?via=recommendation")
        handoff = None
        if shopper.channel != "pos":
            handoff = call(base + "handoff", {"gtins": [item.gtin for item in shopper.items]})["token"]
        if shopper.device.role == "kiosk":
            call(base + "session/end", {})
        visit = Visit(
            channel=shopper.channel,
            customer=shopper.customer,
            anonymous_id=shopper.anonymous_id,
            items=shopper.items,
            order_id=f"demo-{shopper.anonymous_id[5:]}",
            handoff=handoff,
            store=STORE if shopper.channel == "pos" else None,
        )
        self.poster.post(shopper.channel, visit_events(visit, datetime.now(timezone.utc)))
        self.journeys += 1

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                self.journey(plan(n, self.rng, self.devices, self.items))
            except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
                log.warning("shopper %d: %s", n, error)
            n += 1
            self._stop.wait(self.interval_s)
