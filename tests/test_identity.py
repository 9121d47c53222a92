"""Identity stitching: links make persons, guards refuse false merges, arrival order never matters."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hq.core.identity import (
    BLOCKED_VALUES,
    IDENTIFIER_KINDS,
    ConsentChange,
    IdentityGraph,
    Link,
    StitchPolicy,
    attributed,
    stitch,
)
from tests.hq_dataset import fuzzed_data, generate

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)
MIRROR = "/stores/berlin-01/devices/mirror-03"
WEB = "/channels/web"


def event(name: str, data: dict[str, Any], minute: int, eid: str, source: str = MIRROR) -> dict[str, Any]:
    """An envelope as HQ stores it, with a chosen id and time so tests control the order."""
    time = (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"specversion": "1.0", "id": eid, "source": source, "type": f"touchpoint.{name}", "time": time, "data": data}


def identified(session: str, customer: str, minute: int, eid: str, **extra: Any) -> dict[str, Any]:
    return event(
        "customer.identified", {"session_id": session, "customer": customer, "method": "qr", **extra}, minute, eid
    )


def logged_in(anon: str, customer: str, minute: int, eid: str, **extra: Any) -> dict[str, Any]:
    return event("customer.logged_in", {"anonymous_id": anon, "customer": customer, **extra}, minute, eid, WEB)


def feed(graph: IdentityGraph, *events: dict[str, Any]) -> set[str]:
    changed: set[str] = set()
    for e in events:
        changed |= graph.add_event(e)
    return changed


def test_identified_session_belongs_to_the_customer() -> None:
    graph = IdentityGraph()
    tag = event("tag.arrived", {"session_id": "s1", "zone": "cabin-1", "epc": "30", "gtin": None, "rssi": -50}, 1, "e1")
    feed(graph, identified("s1", "c1", 2, "e2"))
    assert graph.attribute(tag) == "customer:c1"
    assert graph.members("customer:c1") == {"customer:c1", "session:s1"}


def test_late_link_reports_the_identifiers_to_reattribute() -> None:
    graph = IdentityGraph()
    tag = event("product.viewed", {"session_id": "s1", "gtin": "1", "via": "tag"}, 1, "e1")
    assert graph.attribute(tag) == "session:s1"
    feed(graph, logged_in("a1", "c1", 5, "e5"))
    changed = graph.add_event(event("handoff.created", {"session_id": "s1", "token": "h1", "gtins": []}, 2, "e2"))
    assert changed == {"session:s1"}  # joins the person "handoff:h1"
    changed = graph.add_event(event("handoff.redeemed", {"token": "h1", "anonymous_id": "a1"}, 3, "e3", WEB))
    assert changed == {"session:s1", "handoff:h1"}
    assert graph.attribute(tag) == "customer:c1"
    assert graph.members("customer:c1") == {"customer:c1", "anon:a1", "handoff:h1", "session:s1"}


def test_handoff_redeemed_while_logged_in_links_the_customer() -> None:
    graph = IdentityGraph()
    feed(
        graph,
        event("handoff.created", {"session_id": "s1", "token": "h1", "gtins": ["1"]}, 1, "e1"),
        event("handoff.redeemed", {"token": "h1", "anonymous_id": "a1", "customer": "c9"}, 2, "e2", WEB),
    )
    assert graph.person_of("session:s1") == "customer:c9"
    assert graph.person_of("anon:a1") == "customer:c9"


def test_anonymous_persons_take_their_smallest_identifier() -> None:
    graph = IdentityGraph()
    feed(
        graph,
        event("handoff.created", {"session_id": "s2", "token": "h1", "gtins": []}, 1, "e1"),
        event("handoff.redeemed", {"token": "h1", "anonymous_id": "a7"}, 2, "e2", WEB),
    )
    assert graph.person_of("session:s2") == "anon:a7"


@pytest.mark.parametrize("value", sorted(BLOCKED_VALUES) + ["NULL", " Undefined ", "mirror-03"])
def test_blocked_values_and_the_device_id_never_link(value: str) -> None:
    graph = IdentityGraph()
    feed(graph, identified(value, "c1", 1, "e1"), identified(value, "c2", 2, "e2"))
    assert graph.members("customer:c1") == {"customer:c1"}
    assert [c.kind for c in graph.conflicts()] == ["blocked", "blocked"]
    tag = event("product.viewed", {"session_id": value, "gtin": "1", "via": "tag"}, 3, "e3")
    assert graph.attribute(tag) is None


def test_site_blocked_values_and_known_devices_never_link() -> None:
    graph = IdentityGraph(StitchPolicy(device_ids=frozenset({"kiosk-01"})).with_blocked("Guest"))
    feed(graph, logged_in("guest", "c1", 1, "e1"), logged_in("kiosk-01", "c2", 2, "e2"), logged_in("a1", "c3", 3, "e3"))
    assert graph.persons() == {"customer:c3": {"anon:a1", "customer:c3"}}
    assert {c.identifiers[0] for c in graph.conflicts()} == {"anon:guest", "anon:kiosk-01"}


@pytest.mark.parametrize("reverse", [False, True])
def test_a_session_joins_one_customer_and_the_earliest_wins(reverse: bool) -> None:
    graph = IdentityGraph()
    links = [identified("s1", "c2", 1, "e1"), identified("s1", "c1", 2, "e2")]
    feed(graph, *(reversed(links) if reverse else links))
    assert graph.person_of("session:s1") == "customer:c2"
    assert graph.members("customer:c1") == {"customer:c1"}
    (conflict,) = graph.conflicts()
    assert conflict.kind == "session-customer"
    assert conflict.event_id == "e2"
    assert conflict.identifiers == ("customer:c1", "customer:c2", "session:s1")


def test_two_customers_are_never_merged_through_other_identifiers() -> None:
    graph = IdentityGraph()
    feed(graph, logged_in("shared-tablet", "c1", 1, "e1"), logged_in("shared-tablet", "c2", 2, "e2"))
    assert graph.person_of("anon:shared-tablet") == "customer:c1"
    assert graph.members("customer:c2") == {"customer:c2"}
    assert [c.kind for c in graph.conflicts()] == ["customers"]


def test_a_link_beyond_the_identifier_cap_is_a_conflict() -> None:
    graph = IdentityGraph(StitchPolicy(max_identifiers=3))
    feed(graph, *(logged_in(f"a{i}", "c1", i, f"e{i}") for i in range(4)))
    assert graph.members("customer:c1") == {"customer:c1", "anon:a0", "anon:a1"}
    assert [(c.kind, c.event_id) for c in graph.conflicts()] == [("cap", "e2"), ("cap", "e3")]


def test_denied_consent_keeps_own_events_but_stitches_nothing() -> None:
    graph = IdentityGraph()
    feed(graph, identified("s1", "c1", 1, "e1", consent="denied"), logged_in("a1", "c1", 2, "e2"))
    own = event("product.viewed", {"session_id": "s1", "customer": "c1", "gtin": "1", "via": "tag"}, 3, "e3")
    anonymous = event("page.viewed", {"anonymous_id": "a1", "page": "product"}, 4, "e4", WEB)
    assert graph.attribute(own) == "customer:c1"
    assert graph.attribute(anonymous) == "anon:a1"
    assert graph.members("customer:c1") == {"customer:c1"}
    assert graph.consent_of("customer:c1") == "denied"
    assert graph.conflicts() == ()


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_consent_is_the_latest_statement_and_revoking_unstitches(order: tuple[int, ...]) -> None:
    statements = [
        identified("s1", "c1", 1, "e1", consent="granted"),
        logged_in("a1", "c1", 2, "e2"),
        identified("s2", "c1", 5, "e5", consent="revoked"),
    ]
    graph = IdentityGraph()
    feed(graph, *(statements[i] for i in order))
    assert graph.consent_of("customer:c1") == "revoked"
    assert graph.person_of("session:s1") == "session:s1"
    assert graph.person_of("anon:a1") == "anon:a1"
    changed = graph.add_event(identified("s3", "c1", 9, "e9", consent="granted"))
    assert {"session:s1", "anon:a1", "session:s2", "session:s3"} <= changed
    assert graph.members("customer:c1") == {"customer:c1", "session:s1", "session:s2", "session:s3", "anon:a1"}


def test_an_unknown_consent_value_is_reported_and_ignored() -> None:
    graph = IdentityGraph()
    feed(graph, identified("s1", "c1", 1, "e1", consent="maybe"))
    assert graph.consent_of("customer:c1") == "unknown"
    assert [c.kind for c in graph.conflicts()] == ["consent"]
    assert graph.person_of("session:s1") == "customer:c1"


def test_redelivered_events_change_nothing() -> None:
    graph = IdentityGraph()
    first = feed(graph, identified("s1", "c1", 1, "e1"))
    assert first == {"session:s1"}
    assert feed(graph, identified("s1", "c1", 1, "e1")) == set()


def test_batch_stitch_and_attribution_match_incremental() -> None:
    events = [
        identified("s1", "c1", 3, "e3"),
        logged_in("a1", "c1", 1, "e1"),
        identified("s1", "c2", 2, "e2"),
        identified("null", "c3", 4, "e4"),
    ]
    batch = stitch(events)
    incremental = IdentityGraph()
    feed(incremental, *events)
    assert batch.persons() == incremental.persons()
    assert batch.conflicts() == incremental.conflicts()
    assert [a.person for a in attributed(events, batch)] == ["customer:c1", "customer:c1", "customer:c2", "customer:c3"]


# -- order independence, proven over random link sets ------------------------------------------

IDENTS = (
    [f"session:s{i}" for i in range(6)]
    + [f"anon:a{i}" for i in range(5)]
    + [f"customer:c{i}" for i in range(4)]
    + [f"handoff:h{i}" for i in range(3)]
)
CUSTOMERS = [i for i in IDENTS if i.startswith("customer:")]

links = st.builds(
    lambda pair, minute, eid: Link.between(pair[0], pair[1], T0 + timedelta(minutes=minute), f"e{eid}"),
    st.lists(st.sampled_from(IDENTS), min_size=2, max_size=2, unique=True),
    st.integers(0, 4),
    st.integers(0, 5),
)
consents = st.builds(
    lambda minute, eid, customer, state: ConsentChange(T0 + timedelta(minutes=minute), f"e{eid}", customer, state),
    st.integers(0, 4),
    st.integers(0, 5),
    st.sampled_from(CUSTOMERS),
    st.sampled_from(["granted", "denied", "revoked"]),
)


def replay(policy: StitchPolicy, operations: list[Link | ConsentChange]) -> tuple[IdentityGraph, dict[str, str]]:
    """Feed operations one by one, keeping a replica updated only through the changed sets."""
    graph = IdentityGraph(policy)
    replica: dict[str, str] = {}
    for op in operations:
        changed = graph.add_link(op) if isinstance(op, Link) else graph.set_consent(op)
        replica.update({ident: graph.person_of(ident) for ident in changed})
    return graph, replica


def snapshot(graph: IdentityGraph) -> tuple[Any, ...]:
    return (
        {i: graph.person_of(i) for i in IDENTS},
        graph.persons(),
        graph.conflicts(),
        {c: graph.consent_of(c) for c in CUSTOMERS},
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(links, max_size=25), st.lists(consents, max_size=4), st.integers(2, 8), st.randoms())
def test_any_arrival_order_gives_the_same_persons_and_conflicts(
    link_list: list[Link], consent_list: list[ConsentChange], cap: int, rnd: random.Random
) -> None:
    policy = StitchPolicy(max_identifiers=cap)
    operations: list[Link | ConsentChange] = [*link_list, *consent_list]
    in_order, _ = replay(policy, [*consent_list, *sorted(link_list)])
    rnd.shuffle(operations)
    shuffled, replica = replay(policy, operations)
    assert snapshot(shuffled) == snapshot(in_order)
    assert all(replica.get(i, i) == shuffled.person_of(i) for i in IDENTS)
    for person, members in shuffled.persons().items():
        customers = [m for m in members if m.startswith("customer:")]
        assert len(customers) <= 1 and len(members) <= cap
        assert person == (customers[0] if customers else min(members))
        assert not any(shuffled.consent_of(c) in ("denied", "revoked") for c in customers)


# -- the generated dataset: expected persons computed independently from the generator's truth ----


def expected_persons(edges: list[tuple[str, str]], withheld: set[str]) -> dict[str, str]:
    """Breadth-first components of the intended links, minus customers who withheld consent."""
    neighbours: dict[str, set[str]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set())
        neighbours.setdefault(b, set())
        if a not in withheld and b not in withheld:
            neighbours[a].add(b)
            neighbours[b].add(a)
    person: dict[str, str] = {}
    for start in neighbours:
        if start in person:
            continue
        component, frontier = {start}, [start]
        while frontier:
            for other in neighbours[frontier.pop()] - component:
                component.add(other)
                frontier.append(other)
        customers = [i for i in component if i.startswith("customer:")]
        name = customers[0] if len(customers) == 1 else min(component)
        person.update(dict.fromkeys(component, name))
    return person


@pytest.mark.parametrize("customers", [300, pytest.param(3000, id="large")])
def test_dataset_persons_match_the_generators_truth(customers: int) -> None:
    data = generate(seed=11, customers=customers)
    withheld = {c for c, state in data.consent.items() if state in ("denied", "revoked")}
    expected = expected_persons(data.edges, withheld)
    graph = stitch(data.events)
    assert {i: graph.person_of(i) for i in expected} == expected
    assert withheld and all(graph.members(c) == {c} for c in withheld)
    kinds = {c.kind for c in graph.conflicts()}
    assert kinds == {"blocked", "session-customer"}


def test_dataset_in_random_arrival_order_stitches_the_same() -> None:
    data = generate(seed=5, customers=200)
    shuffled = list(data.events)
    random.Random(3).shuffle(shuffled)
    batch = stitch(data.events)
    one_by_one = IdentityGraph()
    feed(one_by_one, *shuffled)
    in_batches = IdentityGraph()
    replica: dict[str, str] = {}
    for i in range(0, len(shuffled), 500):
        changed = in_batches.add_events(shuffled[i : i + 500])
        replica.update({ident: in_batches.person_of(ident) for ident in changed})
    for graph in (one_by_one, in_batches):
        assert graph.persons() == batch.persons() and graph.conflicts() == batch.conflicts()
    assert all(replica.get(i, i) == batch.person_of(i) for members in batch.persons().values() for i in members)


def test_a_session_named_by_a_withheld_customer_cannot_join_another() -> None:
    graph = IdentityGraph()
    feed(graph, identified("s1", "c1", 1, "e1", consent="denied"), identified("s1", "c2", 2, "e2"))
    assert graph.person_of("session:s1") == "session:s1"
    assert [(c.kind, c.event_id) for c in graph.conflicts()] == [("session-customer", "e2")]


@given(
    st.sampled_from(
        ["customer.identified", "handoff.created", "handoff.redeemed", "customer.logged_in", "tag.arrived"]
    ),
    fuzzed_data(),
)
def test_hostile_data_never_raises_and_links_only_typed_identifiers(name: str, data: dict[str, Any]) -> None:
    graph = IdentityGraph()
    graph.add_event(event(name, data, 1, "e1"))
    for members in graph.persons().values():
        assert all(m.split(":", 1)[0] in IDENTIFIER_KINDS for m in members)
    person = graph.attribute(event(name, data, 1, "e1"))
    assert person is None or person.split(":", 1)[0] in IDENTIFIER_KINDS


def test_a_null_customer_is_no_claim_and_no_conflict() -> None:
    graph = IdentityGraph()
    feed(graph, event("handoff.redeemed", {"token": "h1", "anonymous_id": "a1", "customer": None}, 1, "e1", WEB))
    assert graph.person_of("handoff:h1") == "anon:a1"
    assert graph.conflicts() == ()
