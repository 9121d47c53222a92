"""A deterministic, realistic HQ dataset for analytics tests: shoppers across stores, web, app and POS.

``generate(seed, customers)`` returns every event HQ would hold (valid envelopes), the catalogue,
and the truth the generator knows: which identifiers it linked for whom (``edges``), so a test
can compute the expected persons on its own. Besides ordinary trips (browsing, kiosk and cabin
sessions with try-ons, size requests, hand-offs, surveys, POS and web purchases) it plants the
traps stitching must survive: shared tablets whose anonymous id is ``undefined``, a friend
scanning a second loyalty card in someone's cabin session, and customers who deny or revoke
consent.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from contract.envelope import edge_source, make_event

START = datetime(2026, 9, 1, tzinfo=timezone.utc)
STORES = ("berlin-01", "hamburg-02", "munich-03", "cologne-04")
DEVICES = ("mirror-01", "mirror-02", "mirror-03", "kiosk-01")
SIZES = ("XS", "S", "M", "L", "XL")
PAGES = ("home", "search", "product", "product", "product", "account", "rewards")


@dataclass
class Dataset:
    """Everything a test needs: events, catalogue, the generator's link truth and the period."""

    events: list[dict[str, Any]]
    catalog: dict[str, Any]
    edges: list[tuple[str, str]]  # identifier pairs the generator meant to link (no traps)
    consent: dict[str, str]  # customer identifier -> final consent (absent: never stated)
    start: datetime
    end: datetime
    gtin_style: dict[str, str] = field(default_factory=dict)


def gtin14(body13: str) -> str:
    """A GTIN-14 with its GS1 check digit (weights 3,1,3,... from the left of 13 digits)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(body13))
    return body13 + str((10 - total % 10) % 10)


class _Generator:
    def __init__(self, seed: int, customers: int, days: int) -> None:
        self.rng = random.Random(seed)
        self.days = days
        self.events: list[dict[str, Any]] = []
        self.edges: list[tuple[str, str]] = []
        self.stated: list[tuple[datetime, str, str]] = []
        self.counter = 0
        self.products = self._catalog()
        self.by_style: dict[str, list[dict[str, Any]]] = {}
        for product in self.products:
            self.by_style.setdefault(product["style"], []).append(product)
        self.styles = sorted(self.by_style)
        # Outfits: styles that go together, so co-occurrence has signal to find.
        self.outfits = [self.rng.sample(self.styles, 3) for _ in range(12)]
        self.shoppers = [self._shopper(i) for i in range(customers)]

    def _catalog(self) -> list[dict[str, Any]]:
        products = []
        for s in range(30):
            for colour in ("blau", "weiss", "schwarz")[: 1 + s % 3]:
                for size in SIZES:
                    body = f"4006381{s:03d}{SIZES.index(size)}{('blau', 'weiss', 'schwarz').index(colour)}0"
                    products.append(
                        {
                            "gtin": gtin14(body[:13]),
                            "style": f"ST-{100 + s}",
                            "name": f"Style {s}",
                            "brand": "Nordlicht",
                            "colour": colour,
                            "size": size,
                            "price": f"{19.95 + s:.2f}",
                            "image": f"images/st-{s}.svg",
                            "stock": 5,
                        }
                    )
        return products

    def _shopper(self, index: int) -> dict[str, Any]:
        rng = self.rng
        member = rng.random() < 0.6
        roll = rng.random()
        consent = "granted" if roll < 0.7 else "none" if roll < 0.85 else "denied" if roll < 0.95 else "revoke"
        return {
            "token": f"cust-{index:05d}" if member else None,
            "consent": consent,
            "size": rng.choice(SIZES),
            "home": rng.choice(STORES),
            "web": f"w{index:05d}" if rng.random() < 0.7 else None,
            "app": f"a{index:05d}" if rng.random() < 0.35 else None,
            "trips": 1 + int(rng.expovariate(0.6)),
        }

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def emit(self, name: str, data: dict[str, Any], source: str, time: datetime) -> None:
        event = make_event(name, data, source=source, time=time)
        event["id"] = self._id()
        self.events.append(event)

    def pick(self, shopper: dict[str, Any], k: int) -> list[dict[str, Any]]:
        """Products of an outfit in (mostly) the shopper's size."""
        styles = self.rng.choice(self.outfits)[:k] if self.rng.random() < 0.7 else self.rng.sample(self.styles, k)
        chosen = []
        for style in styles:
            size = shopper["size"] if self.rng.random() < 0.8 else self.rng.choice(SIZES)
            rows = [p for p in self.by_style[style] if p["size"] == size]
            chosen.append(self.rng.choice(rows))
        return chosen

    def run(self) -> None:
        for shopper in self.shoppers:
            for _ in range(shopper["trips"]):
                day = START + timedelta(days=self.rng.randrange(self.days), hours=self.rng.uniform(9, 19))
                self.trip(shopper, day)

    def trip(self, shopper: dict[str, Any], at: datetime) -> None:
        rng = self.rng
        if shopper["web"] and rng.random() < 0.5:
            at = self.browse(shopper, "web", shopper["web"], at - timedelta(hours=rng.uniform(2, 48)))
        store = shopper["home"] if rng.random() < 0.8 else rng.choice(STORES)
        if rng.random() < 0.3:
            self.kiosk(shopper, store, at)
            at += timedelta(minutes=10)
        tried = self.cabin(shopper, store, at)
        if tried and rng.random() < 0.45:
            bought = [p for p in tried if rng.random() < 0.6] or tried[:1]
            self.purchase(shopper, store, bought, at + timedelta(minutes=rng.uniform(5, 40)))
        elif tried and shopper["web"] and rng.random() < 0.15:
            later = at + timedelta(days=rng.uniform(0.5, 6))
            self.web_purchase(shopper, tried[:1], later)

    def browse(self, shopper: dict[str, Any], channel: str, anon: str, at: datetime) -> datetime:
        rng = self.rng
        source = f"/channels/{channel}"
        if rng.random() < 0.05:
            anon = "undefined"  # a broken tracker on a shared tablet
        logged = shopper["token"] is not None and rng.random() < 0.4
        if logged:
            self.emit("customer.logged_in", {"anonymous_id": anon, "customer": shopper["token"]}, source, at)
            if anon != "undefined":
                self.edges.append((f"anon:{anon}", f"customer:{shopper['token']}"))
        who = {"anonymous_id": anon, **({"customer": shopper["token"]} if logged else {})}
        for _ in range(rng.randint(1, 5)):
            at += timedelta(seconds=rng.uniform(10, 120))
            page = rng.choice(PAGES)
            data = {**who, "page": page}
            if page == "product":
                data["gtin"] = self.pick(shopper, 1)[0]["gtin"]
            self.emit("page.viewed", data, source, at)
            if page == "product" and rng.random() < 0.2:
                self.emit("wishlist.added", {**who, "gtin": data["gtin"]}, source, at)
        return at

    def kiosk(self, shopper: dict[str, Any], store: str, at: datetime) -> None:
        source = edge_source(store, "kiosk-01")
        session = self._id()[:12]
        self.emit("session.started", {"session_id": session}, source, at)
        for product in self.pick(shopper, self.rng.randint(1, 3)):
            at += timedelta(seconds=self.rng.uniform(5, 60))
            self.emit(
                "product.viewed",
                {"session_id": session, "gtin": product["gtin"], "via": self.rng.choice(("search", "browse"))},
                source,
                at,
            )
        if self.rng.random() < 0.3:
            self.emit(
                "feedback.submitted",
                {
                    "session_id": session,
                    "touchpoint": "kiosk",
                    "scale": "csat",
                    "score": self.rng.choice((2, 3, 4, 4, 5, 5)),
                },
                source,
                at,
            )
        self.emit(
            "session.ended",
            {"session_id": session, "duration_ms": int(self.rng.uniform(20, 300) * 1000)},
            source,
            at + timedelta(seconds=5),
        )

    def cabin(self, shopper: dict[str, Any], store: str, at: datetime) -> list[dict[str, Any]]:
        rng = self.rng
        source = edge_source(store, rng.choice(DEVICES[:3]))
        session = self._id()[:12]
        start = at
        self.emit("session.started", {"session_id": session}, source, at)
        who: dict[str, Any] = {"session_id": session}
        if shopper["token"] and rng.random() < 0.6:
            self.identify(shopper, session, source, at + timedelta(seconds=2))
            who["customer"] = shopper["token"]
        if "customer" in who and rng.random() < 0.05:  # a friend scans their card in this cabin too
            friend = rng.choice([s for s in self.shoppers[:50] if s["token"] and s is not shopper] or [shopper])
            self.emit(
                "customer.identified",
                {"session_id": session, "customer": friend["token"], "method": "qr"},
                source,
                at + timedelta(seconds=3),
            )
        tried = self.pick(shopper, rng.randint(1, 4))
        for n, product in enumerate(tried):
            at += timedelta(seconds=rng.uniform(5, 30))
            tag = {"zone": "cabin-1", "epc": f"30{n:022x}", "gtin": product["gtin"], "rssi": -rng.randint(40, 70)}
            self.emit("tag.arrived", {**who, **tag}, source, at)
            self.emit("product.viewed", {**who, "gtin": product["gtin"], "via": "tag"}, source, at)
            dwell = rng.uniform(30, 600)
            self.emit(
                "tag.departed", {**who, **tag, "dwell_ms": int(dwell * 1000)}, source, at + timedelta(seconds=dwell)
            )
        if rng.random() < 0.3:
            request = self._id()[:8]
            self.emit("size.requested", {**who, "gtin": tried[0]["gtin"], "request_id": request}, source, at)
            if rng.random() < 0.9:
                wait = timedelta(seconds=rng.uniform(30, 400))
                self.emit("size.fulfilled", {**who, "gtin": tried[0]["gtin"], "request_id": request}, source, at + wait)
        if rng.random() < 0.15:
            self.handoff(shopper, session, source, tried, at)
        if rng.random() < 0.35:
            self.emit(
                "feedback.submitted",
                {**who, "touchpoint": "mirror", "scale": "nps", "score": rng.choice((3, 6, 7, 8, 9, 9, 10, 10))},
                source,
                at,
            )
        end = at + timedelta(seconds=rng.uniform(30, 120))
        self.emit("session.ended", {**who, "duration_ms": int((end - start).total_seconds() * 1000)}, source, end)
        return tried

    def identify(self, shopper: dict[str, Any], session: str, source: str, at: datetime) -> None:
        """A loyalty scan; a "revoke" shopper grants consent in the first half and revokes after."""
        token = shopper["token"]
        data: dict[str, Any] = {"session_id": session, "customer": token, "method": "qr"}
        consent = shopper["consent"]
        if consent == "revoke":
            consent = "granted" if at < START + timedelta(days=self.days / 2) else "revoked"
        if consent != "none":
            data["consent"] = consent
            self.stated.append((at, f"customer:{token}", consent))
        self.emit("customer.identified", data, source, at)
        self.edges.append((f"session:{session}", f"customer:{token}"))

    def handoff(
        self, shopper: dict[str, Any], session: str, source: str, tried: list[dict[str, Any]], at: datetime
    ) -> None:
        token = self._id()[:10]
        self.emit(
            "handoff.created", {"session_id": session, "token": token, "gtins": [p["gtin"] for p in tried]}, source, at
        )
        self.edges.append((f"session:{session}", f"handoff:{token}"))
        channel, anon = ("app", shopper["app"]) if shopper["app"] else ("web", shopper["web"] or f"h{token}")
        data: dict[str, Any] = {"token": token, "anonymous_id": anon}
        self.emit("handoff.redeemed", data, f"/channels/{channel}", at + timedelta(minutes=1))
        self.edges.append((f"handoff:{token}", f"anon:{anon}"))
        self.browse(shopper, channel, anon, at + timedelta(minutes=2))

    def purchase(self, shopper: dict[str, Any], store: str, items: list[dict[str, Any]], at: datetime) -> None:
        data: dict[str, Any] = {
            "order_id": self._id()[:12],
            "store": store,
            "items": [{"gtin": p["gtin"], "qty": 1, "price": p["price"]} for p in items],
        }
        if shopper["token"] and self.rng.random() < 0.7:
            data["customer"] = shopper["token"]
        self.emit("purchase.completed", data, "/channels/pos/till-1", at)

    def web_purchase(self, shopper: dict[str, Any], items: list[dict[str, Any]], at: datetime) -> None:
        data: dict[str, Any] = {
            "order_id": self._id()[:12],
            "anonymous_id": shopper["web"],
            "items": [{"gtin": p["gtin"], "qty": 1, "price": p["price"]} for p in items],
        }
        if shopper["token"] and self.rng.random() < 0.5:
            data["customer"] = shopper["token"]
        self.emit("cart.added", {"anonymous_id": shopper["web"], "gtin": items[0]["gtin"]}, "/channels/web", at)
        self.emit("purchase.completed", data, "/channels/web", at + timedelta(minutes=3))


def generate(seed: int = 7, customers: int = 300, days: int = 60) -> Dataset:
    """A dataset of ``customers`` shoppers over ``days`` days; the same seed gives the same events."""
    gen = _Generator(seed, customers, days)
    gen.run()
    gen.events.sort(key=lambda e: (e["time"], e["id"]))
    seqs: dict[str, int] = {}
    for event in gen.events:
        if event["source"].startswith("/stores/"):
            seqs[event["source"]] = event["seq"] = seqs.get(event["source"], 0) + 1
    catalog = {"version": START.isoformat(), "currency": "EUR", "products": gen.products}
    end = START + timedelta(days=days + 8)
    consent = {customer: state for _, customer, state in sorted(gen.stated)}
    return Dataset(gen.events, catalog, gen.edges, consent, START, end, {p["gtin"]: p["style"] for p in gen.products})


def fuzzed_data() -> Any:
    """A hypothesis strategy for hostile ``data`` objects: the fields analytics read, any JSON values."""
    from hypothesis import strategies as st

    fields = (
        "session_id",
        "customer",
        "anonymous_id",
        "token",
        "consent",
        "gtin",
        "gtins",
        "items",
        "store",
        "order_id",
        "page",
        "touchpoint",
        "scale",
        "score",
        "duration_ms",
        "dwell_ms",
        "request_id",
    )
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(("gtin", "qty", "x")), inner, max_size=3)
        ),
        max_leaves=8,
    )
    return st.dictionaries(st.sampled_from(fields), values, max_size=8)
