"""Touchpoints: events map to (channel, place, kind), touchpoints to phases, steps around purchases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import ConfigError
from hq.core.touchpoints import PHASES, Touchpoint, TouchpointMap, journey, purchase_position, store_of, touchpoint_of

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)
DEFAULTS = TouchpointMap()


def event(name: str, source: str, minute: int = 0, eid: str = "e", **data: Any) -> dict[str, Any]:
    time = (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"id": eid, "source": source, "type": f"touchpoint.{name}", "time": time, "data": data}


@pytest.mark.parametrize(
    ("name", "source", "data", "expected", "phase"),
    [
        ("tag.arrived", "/stores/berlin-01/devices/mirror-03", {}, "store/berlin-01/mirror", "consideration"),
        ("session.started", "/stores/hamburg-02/devices/kiosk-1", {}, "store/hamburg-02/kiosk", "consideration"),
        ("session.started", "/stores/hamburg-02/devices/pi-7", {}, "store/hamburg-02/device", "consideration"),
        ("purchase.completed", "/channels/pos/till-4", {"store": "berlin-01"}, "store/berlin-01/pos", "purchase"),
        ("purchase.completed", "/channels/pos", {}, "store/unknown/pos", "purchase"),
        ("purchase.completed", "/channels/web", {}, "web/checkout/page", "purchase"),
        ("page.viewed", "/channels/web", {"page": "product"}, "web/product/page", "consideration"),
        ("page.viewed", "/channels/app", {"page": "home"}, "app/home/page", "awareness"),
        ("page.viewed", "/channels/app", {"page": "order-status"}, "app/order-status/page", "service"),
        ("page.viewed", "/channels/app", {"page": "rewards"}, "app/rewards/page", "loyalty"),
        ("page.viewed", "/channels/web", {"page": "<script>"}, "web/page/page", "consideration"),
        ("cart.added", "/channels/web", {}, "web/cart/page", "consideration"),
        ("handoff.redeemed", "/channels/app", {}, "app/handoff/page", "consideration"),
        ("page.viewed", "/channels/email/weekly", {"campaign": "sale-11"}, "email/sale-11/email", "awareness"),
    ],
)
def test_default_touchpoints_and_phases(name: str, source: str, data: dict, expected: str, phase: str) -> None:
    point = touchpoint_of(event(name, source, **data), DEFAULTS)
    assert str(point) == expected
    assert DEFAULTS.phase(point) == phase


def test_identity_only_and_foreign_events_have_no_touchpoint() -> None:
    assert touchpoint_of(event("customer.logged_in", "/channels/web"), DEFAULTS) is None
    assert touchpoint_of(event("page.viewed", "/elsewhere"), DEFAULTS) is None


def test_config_overrides_devices_and_phases_before_the_defaults() -> None:
    tmap = TouchpointMap.from_config({"devices": {"pi-7": "mirror"}, "phases": {"store/*/mirror": "service"}})
    point = touchpoint_of(event("tag.arrived", "/stores/b-1/devices/pi-7"), tmap)
    assert point == Touchpoint("store", "b-1", "mirror")
    assert tmap.phase(point) == "service"
    assert tmap.phase(Touchpoint("store", "b-1", "pos")) == "purchase"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"phases": {"store/*/mirror": "delight"}}, "touchpoints.phases.store/*/mirror"),
        ({"phases": {"store/mirror": "service"}}, "touchpoints.phases.store/mirror"),
        ({"devices": {"pi-7": "Mirror!"}}, "touchpoints.devices.pi-7"),
        ({"kinds": {}}, "touchpoints.kinds"),
    ],
)
def test_bad_config_names_the_key(table: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TouchpointMap.from_config(table)
    assert caught.value.key == key


def test_positions_around_purchases() -> None:
    purchases = [T0 + timedelta(days=1), T0 + timedelta(days=5)]
    assert purchase_position(T0, purchases, False) == "before"
    assert purchase_position(T0 + timedelta(days=3), purchases, False) == "before"
    assert purchase_position(T0 + timedelta(days=5), purchases, False) == "before"
    assert purchase_position(T0 + timedelta(days=6), purchases, False) == "after"
    assert purchase_position(T0 + timedelta(days=6), purchases, True) == "at"
    assert purchase_position(T0, [], False) is None


def test_journey_orders_steps_and_places_them() -> None:
    steps = journey(
        [
            event("purchase.completed", "/channels/pos", 30, "e3", store="berlin-01"),
            event("tag.arrived", "/stores/berlin-01/devices/mirror-1", 10, "e2"),
            event("page.viewed", "/channels/web", 10, "e1", page="home"),
            event("page.viewed", "/channels/web", 40, "e4", page="help"),
        ],
        DEFAULTS,
    )
    assert [(s.event_id, s.phase, s.position) for s in steps] == [
        ("e1", "awareness", "before"),
        ("e2", "consideration", "before"),
        ("e3", "purchase", "at"),
        ("e4", "service", "after"),
    ]


def test_store_of_edge_and_pos_events() -> None:
    assert store_of(event("tag.arrived", "/stores/b-1/devices/m-1")) == "b-1"
    assert store_of(event("purchase.completed", "/channels/pos", store="b-2")) == "b-2"
    assert store_of(event("purchase.completed", "/channels/web")) is None


@given(
    st.dictionaries(st.sampled_from(["page", "store", "campaign"]), st.none() | st.text() | st.integers()),
    st.sampled_from(["/channels/web", "/channels/app", "/channels/pos", "/channels/email"]),
    st.sampled_from(["page.viewed", "purchase.completed", "cart.added"]),
)
def test_any_data_gives_a_well_formed_touchpoint(data: dict, source: str, name: str) -> None:
    point = touchpoint_of(event(name, source, **data), DEFAULTS)
    assert point is not None and Touchpoint.parse(str(point)) == point
    assert DEFAULTS.phase(point) in PHASES


@given(st.text(max_size=80))
def test_parse_accepts_only_the_three_part_form(text: str) -> None:
    try:
        point = Touchpoint.parse(text)
    except ValueError:
        return
    assert str(point) == text
