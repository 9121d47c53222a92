"""Recommendations: co-occurrence scores, segments, sizes, consent, and the store message."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime, timedelta, timezone
from itertools import combinations
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.catalog import parse
from hq.core.identity import AttributedEvent, IdentityGraph, attributed, stitch
from hq.core.recommend import CoOccurrence, Recommender, RecommendPolicy, Scored, item_of, preferred_sizes, segment
from sync.downlink import parse as parse_downlink
from tests.hq_dataset import fuzzed_data, generate

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
POLICY = RecommendPolicy()


def test_pairs_need_support_and_are_ranked_by_cosine() -> None:
    counts = CoOccurrence(RecommendPolicy(min_support=2, top_k=2))
    for basket in (["a", "b"], ["a", "b"], ["a", "c"], ["a", "c"], ["a", "c"], ["c"], ["a", "d"], ["b", "b"]):
        counts.add(basket)
    similar = counts.similar()
    a_b = 2 / math.sqrt(6 * 3)
    a_c = 3 / math.sqrt(6 * 4)
    assert similar["a"] == [Scored("c", pytest.approx(a_c), 3), Scored("b", pytest.approx(a_b), 2)]
    assert similar["b"] == [Scored("a", pytest.approx(a_b), 2)]
    assert "d" not in similar  # one basket together is below the support


def test_oversized_baskets_are_skipped_and_counted() -> None:
    counts = CoOccurrence(RecommendPolicy(max_basket=3))
    counts.add(["a", "b", "c", "d"])
    counts.add(["a", "b"])
    assert (counts.baskets, counts.skipped) == (1, 1)
    assert counts.pairs == Counter({("a", "b"): 1})


@pytest.mark.parametrize(
    ("days_ago", "expected"),
    [
        ([], None),
        ([400], "lapsed"),
        ([10, 200], "returning"),
        ([181], "lapsed"),
        ([3], "new"),
        ([3, 50], "returning"),
        ([3, 50, 100, 300], "frequent"),
        ([3, 50, 100, 400], "returning"),
        ([-1], None),  # a purchase after "now" does not count yet
    ],
)
def test_segments_from_recency_and_frequency(days_ago: list[int], expected: str | None) -> None:
    assert segment([NOW - timedelta(days=d) for d in days_ago], NOW, POLICY) == expected


def test_preferred_sizes_keep_those_near_the_best() -> None:
    assert preferred_sizes({"M": 6, "L": 3, "S": 2, "XL": 3}, POLICY) == ["M", "L", "XL"]
    assert preferred_sizes({"M": 6, "L": 3, "S": 3, "XL": 3}, RecommendPolicy(max_sizes=2)) == ["M", "L"]
    assert preferred_sizes({}, POLICY) == []


CATALOG = parse(
    {
        "version": "1",
        "currency": "EUR",
        "products": [
            {
                "gtin": g,
                "style": style,
                "name": "x",
                "brand": "b",
                "colour": "blau",
                "size": size,
                "price": "9.95",
                "image": "i.svg",
                "stock": 1,
            }
            for g, style, size in [
                ("40063810000002", "ST-1", "M"),
                ("40063810000019", "ST-1", "L"),
                ("40063810000026", "ST-2", "M"),
                ("40063810000033", "ST-3", "S"),
            ]
        ],
    },
    origin="test",
    image_root=None,
)
SHIRT_M, SHIRT_L, TROUSERS_M, HAT_S = "40063810000002", "40063810000019", "40063810000026", "40063810000033"


def event(name: str, data: dict[str, Any], days_ago: float, source: str, person: str | None) -> AttributedEvent:
    time = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return AttributedEvent(
        person,
        {"id": f"{name}{days_ago}{person}", "source": source, "type": f"touchpoint.{name}", "time": time, "data": data},
    )


def tried(session: str, gtin: str, days_ago: float, person: str | None, device: str = "mirror-1") -> AttributedEvent:
    return event(
        "tag.arrived",
        {"session_id": session, "zone": "c", "epc": "30", "gtin": gtin, "rssi": -5},
        days_ago,
        f"/stores/b-1/devices/{device}",
        person,
    )


def bought(order: str, gtins: list[str], days_ago: float, person: str | None) -> AttributedEvent:
    data = {"order_id": order, "store": "b-1", "items": [{"gtin": g, "qty": 1, "price": "1"} for g in gtins]}
    return event("purchase.completed", data, days_ago, "/channels/pos", person)


def test_siblings_of_one_style_are_one_item() -> None:
    assert item_of(SHIRT_L, CATALOG) == item_of(SHIRT_M, CATALOG) == "ST-1"
    assert item_of("12345678901231", CATALOG) == "12345678901231"
    rec = Recommender(CATALOG, lambda _: "granted", NOW, RecommendPolicy(min_support=1))
    for item in [
        tried("s1", SHIRT_M, 1, None),
        tried("s1", SHIRT_L, 1, None),
        tried("k1", HAT_S, 1, None, "kiosk-1"),
        tried("k1", SHIRT_M, 1, None, "kiosk-1"),
        bought("o1", [SHIRT_M, TROUSERS_M], 1, None),
    ]:
        rec.add(item)
    assert rec.message("b-1")["items"] == {"ST-1": ["ST-2"], "ST-2": ["ST-1"]}


def test_personal_hints_only_for_granted_consent() -> None:
    graph = IdentityGraph()
    mirror = "/stores/b-1/devices/mirror-1"
    for customer, consent in (("c1", "granted"), ("c2", "denied"), ("c3", None)):
        data = {"session_id": f"s-{customer}", "customer": customer, "method": "qr"}
        if consent:
            data["consent"] = consent
        graph.add_event(
            {
                "id": customer,
                "source": mirror,
                "type": "touchpoint.customer.identified",
                "time": "2026-11-20T10:00:00.000Z",
                "data": data,
            }
        )
    rec = Recommender(CATALOG, graph.consent_of, NOW)
    for customer in ("c1", "c2", "c3"):
        person = f"customer:{customer}"
        rec.add(tried(f"s-{customer}", SHIRT_M, 3, person))
        rec.add(tried(f"s-{customer}", SHIRT_L, 3, person))
        rec.add(tried(f"s2-{customer}", SHIRT_M, 2, person))  # M weighs 2, L 1 + 2: both kept
        rec.add(bought(f"o-{customer}", [SHIRT_L], 3, person))
    rec.add(bought("o-late", [HAT_S], -1, "customer:c1"))  # after "now": not yet
    message = rec.message("b-1")
    assert message["customers"] == {"c1": {"segment": "new", "sizes": ["L", "M"]}}
    assert message["segments"]["new"] == {"customers": 3, "top": ["ST-1"]}
    assert rec.message("b-9")["customers"] == {}
    version, document = parse_downlink("recommendations", json.dumps(message).encode())
    assert version == "2026-11-23T12:00:00.000Z" and document == message


def test_dataset_items_match_an_independent_count() -> None:
    data = generate(seed=9, customers=300)
    catalog = parse(data.catalog, origin="test", image_root=None)
    graph = stitch(data.events)
    rec = Recommender(catalog, graph.consent_of, data.end)
    for item in attributed(data.events, graph):
        rec.add(item)
    baskets: dict[str, set[str]] = {}
    for e in data.events:
        if e["type"] == "touchpoint.tag.arrived" and "/devices/mirror-" in e["source"]:
            baskets.setdefault(e["source"] + e["data"]["session_id"], set()).add(data.gtin_style[e["data"]["gtin"]])
        if e["type"] == "touchpoint.purchase.completed":
            baskets[e["data"]["order_id"]] = {data.gtin_style[i["gtin"]] for i in e["data"]["items"]}
    single = Counter(s for b in baskets.values() for s in b)
    pair = Counter(p for b in baskets.values() for p in combinations(sorted(b), 2))
    expected: dict[str, list[tuple[float, int, str]]] = {}
    for (a, b), n in pair.items():
        if n >= POLICY.min_support:
            cos = n / (single[a] * single[b]) ** 0.5
            expected.setdefault(a, []).append((-cos, -n, b))
            expected.setdefault(b, []).append((-cos, -n, a))
    message = rec.message("berlin-01")
    assert message["items"] == {k: [s for *_, s in sorted(v)[: POLICY.top_k]] for k, v in expected.items()}
    granted = {c for c, state in data.consent.items() if state == "granted"}
    assert {f"customer:{token}" for token in message["customers"]} <= granted
    assert len(message["customers"]) > 20
    assert sum(s["customers"] for s in message["segments"].values()) >= len(message["customers"])


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["tag.arrived", "purchase.completed"]),
            fuzzed_data(),
            st.sampled_from([None, "customer:c1"]),
        ),
        max_size=10,
    )
)
def test_hostile_data_never_raises(items: list[tuple[str, dict[str, Any], str | None]]) -> None:
    rec = Recommender(CATALOG, lambda _: "granted", NOW, RecommendPolicy(min_support=1))
    for i, (name, data, person) in enumerate(items):
        source = "/stores/b-1/devices/mirror-1" if name == "tag.arrived" else "/channels/pos"
        rec.add(event(name, data, i, source, person))
    message = rec.message("b-1")
    assert json.loads(json.dumps(message)) == message
