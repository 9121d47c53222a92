"""Recommendations for the stores: "complete the look" item pairs, customer segments, preferred sizes.

**Items.** A basket is the set of items tried on in one fitting-room session (``tag.arrived`` on a
mirror device) or bought in one order (``purchase.completed``). An item is a GTIN's style when the
catalogue knows the GTIN, else the GTIN, so sizes and colours of one style are one item and a
style is never recommended for its own siblings. Pairs are scored by cosine,
``together / sqrt(count_a x count_b)``; a pair needs ``min_support`` baskets together; each item
keeps its ``top_k`` best (ties: more baskets together, then item id). Baskets of more than
``max_basket`` items (a rail wheeled into a cabin) are skipped.

**Segments** from a customer's distinct orders up to ``now``: ``lapsed`` when the last is more
than ``lapsed_days`` (180) old; else ``frequent`` with at least ``frequent_orders`` (4) in the last
``frequent_days`` (365); else ``new`` with exactly one order; else ``returning``. No order: no
segment.

**Sizes** per customer: purchases weigh 2, try-ons 1, summed per catalogue size; the sizes
weighing at least half the best, best first (ties by size), at most three.

**Message** retained on ``touchpoint/v1/{store}/recommendations``::

    {"version": "2026-11-23T10:00:00.000Z", "store": "berlin-01",
     "items": {"LS-100": ["JN-200", "BL-310"]},
     "segments": {"new": {"customers": 41, "top": ["LS-100"]}, "returning": {...}, ...},
     "customers": {"cust-00042": {"segment": "returning", "sizes": ["M", "L"]}}}

``items`` are computed over every basket passed in; ``segments`` count the customers who touched
the store, with the items most of them bought; ``customers`` lists, by token, only those of them
whose consent is ``granted``: nobody else gets personal hints.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any, Protocol

from contract.envelope import EDGE_SOURCE, event_name, parse_time, utc_now_iso
from hq.core.identity import AttributedEvent
from hq.core.touchpoints import purchased_gtins, store_of

SEGMENTS = ("new", "returning", "frequent", "lapsed")
PURCHASE_WEIGHT = 2
TRY_ON_WEIGHT = 1


class ProductLookup(Protocol):
    """What a catalogue must offer: ``kiosk.catalog.Catalog`` does."""

    def get(self, gtin: str) -> Any: ...


@dataclass(frozen=True)
class RecommendPolicy:
    min_support: int = 3
    top_k: int = 5
    max_basket: int = 30
    lapsed_days: int = 180
    frequent_orders: int = 4
    frequent_days: int = 365
    segment_top: int = 5
    max_sizes: int = 3


@dataclass(frozen=True)
class Scored:
    item: str
    score: float
    together: int


def item_of(gtin: str, catalog: ProductLookup) -> str:
    """The style of a GTIN the catalogue knows, else the GTIN itself."""
    product = catalog.get(gtin)
    return product.style if product is not None else gtin


class CoOccurrence:
    """Counts items and pairs over baskets; ``similar`` scores them."""

    def __init__(self, policy: RecommendPolicy | None = None) -> None:
        self.policy = policy or RecommendPolicy()
        self.items: Counter[str] = Counter()
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.baskets = 0
        self.skipped = 0

    def add(self, basket: Iterable[str]) -> None:
        items = sorted(set(basket))
        if len(items) > self.policy.max_basket:
            self.skipped += 1
            return
        self.baskets += 1
        self.items.update(items)
        self.pairs.update(combinations(items, 2))

    def similar(self) -> dict[str, list[Scored]]:
        """Item -> its top-k companions, best first."""
        found: dict[str, list[Scored]] = {}
        for (a, b), together in self.pairs.items():
            if together < self.policy.min_support:
                continue
            score = together / math.sqrt(self.items[a] * self.items[b])
            found.setdefault(a, []).append(Scored(b, score, together))
            found.setdefault(b, []).append(Scored(a, score, together))
        return {
            item: sorted(scored, key=lambda s: (-s.score, -s.together, s.item))[: self.policy.top_k]
            for item, scored in sorted(found.items())
        }


def segment(orders: Iterable[datetime], now: datetime, policy: RecommendPolicy) -> str | None:
    """new, returning, frequent, lapsed or None (no order up to ``now``); see the module docstring."""
    times = sorted(t for t in orders if t <= now)
    if not times:
        return None
    if now - times[-1] > timedelta(days=policy.lapsed_days):
        return "lapsed"
    if sum(1 for t in times if now - t <= timedelta(days=policy.frequent_days)) >= policy.frequent_orders:
        return "frequent"
    return "new" if len(times) == 1 else "returning"


def preferred_sizes(weights: Mapping[str, int], policy: RecommendPolicy) -> list[str]:
    """Sizes weighing at least half the best, best first, at most ``max_sizes``."""
    if not weights:
        return []
    best = max(weights.values())
    ranked = sorted((size for size, w in weights.items() if 2 * w >= best), key=lambda s: (-weights[s], s))
    return ranked[: policy.max_sizes]


class _Customer:
    __slots__ = ("orders", "sizes", "stores", "bought")

    def __init__(self) -> None:
        self.orders: dict[str, datetime] = {}
        self.sizes: Counter[str] = Counter()
        self.stores: set[str] = set()
        self.bought: set[str] = set()


class Recommender:
    """Feed attributed events with ``add``; ``message(store)`` builds that store's document."""

    def __init__(
        self,
        catalog: ProductLookup,
        consent_of: Callable[[str], str],
        now: datetime,
        policy: RecommendPolicy | None = None,
    ) -> None:
        self.catalog = catalog
        self.consent_of = consent_of
        self.now = now
        self.policy = policy or RecommendPolicy()
        self._orders: dict[str, frozenset[str]] = {}
        self._cabins: dict[tuple[str, str], set[str]] = {}
        self._customers: dict[str, _Customer] = {}
        self._similar: dict[str, list[Scored]] | None = None

    def add(self, item: AttributedEvent) -> None:
        event, person = item.event, item.person
        if parse_time(event["time"]) > self.now:
            return
        self._similar = None
        name, data = event_name(event), event.get("data") or {}
        customer = self._customer(person)
        store = store_of(event)
        if customer is not None and store is not None:
            customer.stores.add(store)
        if name == "purchase.completed":
            gtins = purchased_gtins(data)
            self._orders[str(data.get("order_id"))] = frozenset(item_of(g, self.catalog) for g in gtins)
            if customer is not None:
                customer.orders.setdefault(str(data.get("order_id")), parse_time(event["time"]))
                customer.bought.update(item_of(g, self.catalog) for g in gtins)
                self._weigh(customer, gtins, PURCHASE_WEIGHT)
        elif name == "tag.arrived" and isinstance(data.get("gtin"), str):
            edge = EDGE_SOURCE.fullmatch(str(event.get("source", "")))
            if edge and edge["device"].startswith("mirror-") and "session_id" in data:
                key = (str(event["source"]), str(data["session_id"]))
                self._cabins.setdefault(key, set()).add(item_of(data["gtin"], self.catalog))
            if customer is not None:
                self._weigh(customer, [data["gtin"]], TRY_ON_WEIGHT)

    def _customer(self, person: str | None) -> _Customer | None:
        if person is None or not person.startswith("customer:"):
            return None
        return self._customers.setdefault(person, _Customer())

    def _weigh(self, customer: _Customer, gtins: Iterable[str], weight: int) -> None:
        for gtin in gtins:
            product = self.catalog.get(gtin)
            if product is not None:
                customer.sizes[product.size] += weight

    def similar(self) -> dict[str, list[Scored]]:
        """Item -> scored companions over every basket so far (cabin sessions and orders)."""
        if self._similar is None:
            counts = CoOccurrence(self.policy)
            for basket in (*self._orders.values(), *self._cabins.values()):
                counts.add(basket)
            self._similar = counts.similar()
        return self._similar

    def message(self, store: str) -> dict[str, Any]:
        """The retained ``recommendations`` document for one store."""
        items = {item: [s.item for s in scored] for item, scored in self.similar().items()}
        members: dict[str, list[str]] = {name: [] for name in SEGMENTS}
        customers: dict[str, dict[str, Any]] = {}
        for person, customer in sorted(self._customers.items()):
            if store not in customer.stores:
                continue
            kind = segment(customer.orders.values(), self.now, self.policy)
            if kind is not None:
                members[kind].append(person)
            if self.consent_of(person) == "granted":
                token = person[len("customer:") :]
                customers[token] = {"segment": kind, "sizes": preferred_sizes(customer.sizes, self.policy)}
        segments = {}
        for kind, persons in members.items():
            buyers = Counter(item for p in persons for item in self._customers[p].bought)
            top = sorted(buyers.items(), key=lambda pair: (-pair[1], pair[0]))[: self.policy.segment_top]
            segments[kind] = {"customers": len(persons), "top": [item for item, _ in top]}
        return {
            "version": utc_now_iso(self.now),
            "store": store,
            "items": items,
            "segments": segments,
            "customers": customers,
        }
