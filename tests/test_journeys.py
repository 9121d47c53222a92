"""Analytics over real storage (SQLite and PostgreSQL) give what the pure core gives in memory."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.catalog import parse
from contract.envelope import make_event, utc_now_iso
from hq.analytics.journeys import (
    CursorError,
    customer_journey,
    person_events,
    recommendation_messages,
    report_json,
    touchpoint_report,
)
from hq.core.identity import LINK_EVENTS, attributed, stitch
from hq.core.intake import compact_json, to_row
from hq.core.recommend import Recommender
from hq.core.records import EventRow
from hq.core.report import Window, compute
from hq.core.touchpoints import TouchpointMap, journey
from hq.storage import Storage
from hq.storage.backends import SqliteStorage
from tests.hq_dataset import Dataset, generate
from tests.hq_support import NOW, same


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(seed=21, customers=120)


@pytest.fixture
def loaded(storage: Storage, dataset: Dataset) -> Storage:  # noqa: F811
    rows = [to_row(e, json.dumps(e), None, NOW) for e in dataset.events]
    assert storage.store_events(rows) == len(rows)
    return storage


def test_events_read_back_whole_across_pages(loaded: Storage, dataset: Dataset) -> None:
    back = list(loaded.read_events(page=700))
    assert sorted(e["id"] for e in back) == sorted(e["id"] for e in dataset.events)
    original = {e["id"]: e for e in dataset.events}
    assert all(e["data"] == original[e["id"]]["data"] and e["time"] == original[e["id"]]["time"] for e in back)
    window = Window(dataset.start + timedelta(days=10), dataset.start + timedelta(days=20))
    inside = {
        e["id"]
        for e in dataset.events
        if window.start.isoformat() <= e["time"].replace("Z", "+00:00") < window.end.isoformat()
    }
    assert {e["id"] for e in loaded.read_events(start=window.start, end=window.end, page=300)} == inside


def test_storage_analytics_equal_the_in_memory_core(loaded: Storage, dataset: Dataset) -> None:
    memory = stitch(dataset.events)
    assert loaded.stitched() == memory.stitched()
    window = Window(dataset.start + timedelta(days=7), dataset.start + timedelta(days=40))
    report = touchpoint_report(loaded, window)
    same(report, compute(attributed(dataset.events, memory), window))
    document = json.loads(json.dumps(report_json(report)))
    assert document["touchpoints"][0]["touchpoint"].count("/") == 2
    assert [s["phase"] for s in document["funnel"]][:2] == ["awareness", "consideration"]

    catalog = parse(dataset.catalog, origin="test", image_root=None)
    messages = recommendation_messages(loaded, ["berlin-01", "munich-03"], catalog, dataset.end)
    direct = Recommender(catalog, memory.consent_of, dataset.end)
    for item in attributed(dataset.events, memory):
        direct.add(item)
    assert messages == {store: direct.message(store) for store in ("berlin-01", "munich-03")}


def test_customer_journey_pages_through_every_event_of_the_person(loaded: Storage, dataset: Dataset) -> None:
    graph = stitch(loaded.read_events(names=LINK_EVENTS))
    person = max(graph.persons(), key=lambda p: (p.startswith("customer:"), len(graph.members(p)), p))
    token = person.split(":", 1)[1]
    expected = sorted(
        (e for e in dataset.events if graph.attribute(e) == person), key=lambda e: (e["time"], e["source"], e["id"])
    )
    pages, cursor = [], None
    while True:
        page = customer_journey(loaded, token, cursor=cursor, limit=4)
        pages.append(page)
        cursor = page["next"]
        if cursor is None:
            break
    timeline = [e for p in pages for e in p["events"]]
    assert [e["id"] for e in timeline] == [e["id"] for e in expected] and len(pages) > 2
    assert {e["channel"] for e in timeline} >= {"store"} and all(p["customer"] == token for p in pages)
    assert {"phase", "data", "type", "source", "time"} <= set(timeline[0])
    with pytest.raises(CursorError):
        customer_journey(loaded, token, cursor="not-a-cursor")


def test_a_late_link_names_exactly_the_events_to_reattribute(loaded: Storage, dataset: Dataset) -> None:
    graph = stitch(loaded.read_events(names=LINK_EVENTS))
    linked = {
        e["data"]["session_id"]
        for e in dataset.events
        if e["type"] in ("touchpoint.customer.identified", "touchpoint.handoff.created")
    }
    session = next(
        e["data"]["session_id"]
        for e in dataset.events
        if e["type"] == "touchpoint.session.started" and e["data"]["session_id"] not in linked
    )
    late = {
        "id": "late-1",
        "source": "/stores/berlin-01/devices/mirror-01",
        "type": "touchpoint.customer.identified",
        "time": "2026-09-01T00:00:00.000Z",
        "data": {"session_id": session, "customer": "new-card", "method": "qr"},
    }
    changed = graph.add_event(late)
    assert changed == {f"session:{session}"}
    moved = [e for e in loaded.events_naming(changed) if graph.attribute(e) == "customer:new-card"]
    assert moved and {e["data"]["session_id"] for e in moved} == {session}
    assert len(moved) == sum(
        1 for e in dataset.events if e["data"].get("session_id") == session and "customer" not in e["data"]
    )


def test_journey_pages_equal_the_core_journey_of_the_person_events(loaded: Storage, dataset: Dataset) -> None:
    """The journey reads only columns until the page; it must give exactly what the core gives
    from whole events, including for ids ingest stored from integers before intake refused them
    (which do not stitch)."""
    source = "/stores/berlin-01/devices/kiosk-07"
    extra = [
        make_event(
            "customer.identified",
            {"session_id": "777", "customer": "int-cust", "method": "qr"},
            source=source,
            time=dataset.start + timedelta(days=3),
        ),
        make_event(
            "product.viewed",
            {"session_id": "777", "gtin": "04012345010008", "via": "tag"},
            source=source,
            time=dataset.start + timedelta(days=3, seconds=5),
        ),
        make_event(
            "product.viewed",
            {"session_id": "777", "gtin": "04012345010008", "via": "tag"},
            source=source,
            time=dataset.start + timedelta(days=3, seconds=6),
        ),
        make_event(
            "page.viewed",
            {"customer": "777", "session_id": "777", "anonymous_id": "a-777", "page": "product"},
            source="/channels/web",
            time=dataset.start + timedelta(days=3, seconds=7),
        ),
    ]
    for seq, event in enumerate(extra[:3], start=1):
        event["seq"] = seq
    extra[2]["data"]["session_id"] = extra[3]["data"]["customer"] = 777
    loaded.store_events(
        [to_row(e, json.dumps(e), None, NOW) for e in extra[:2]] + [stored_before(e) for e in extra[2:]]
    )
    graph = stitch(loaded.read_events(names=LINK_EVENTS))
    tmap, timelines = TouchpointMap(), {}
    for token in ("int-cust", max(graph.persons(), key=lambda p: (len(graph.members(p)), p)).split(":", 1)[1]):
        person = graph.person_of(f"customer:{token}")
        events = {e["id"]: e for e in person_events(loaded, graph, person)}
        expected = sorted(
            (
                {
                    "id": e["id"],
                    "source": e["source"],
                    "type": e["type"],
                    "time": e["time"],
                    "channel": s.touchpoint.channel if s.touchpoint else e["channel"],
                    "phase": s.phase,
                    "data": e["data"],
                }
                for s in journey(events.values(), tmap)
                for e in [events[s.event_id]]
            ),
            key=lambda e: (e["time"], e["source"], e["id"]),
        )
        timeline, cursor = [], None
        while True:
            page = customer_journey(loaded, token, cursor=cursor, limit=3)
            timeline += page["events"]
            if (cursor := page["next"]) is None:
                break
        assert timeline == expected
        timelines[token] = timeline
    assert [e["data"] for e in timelines["int-cust"]][1:] == [extra[1]["data"], extra[3]["data"]]
    assert len(timelines) == 2 and len(max(timelines.values(), key=len)) > 6


def stored_before(event: dict[str, Any]) -> EventRow:
    """The row ingest made of an event with integer ids before intake refused them: the integers as
    text in the identifier columns, as numbers in ``data``."""
    as_text = {k: str(v) if isinstance(v, int) else v for k, v in event["data"].items()}
    row = to_row({**event, "data": as_text}, json.dumps(event), None, NOW)
    return dataclasses.replace(row, data=compact_json(event["data"]))


@pytest.fixture(scope="module")
def sqlite(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Iterator[SqliteStorage]:
    """A SQLite HQ with the dataset and the statistics ANALYZE gathers (which tempt the planner)."""
    storage = SqliteStorage(tmp_path_factory.mktemp("hq") / "hq.db")
    storage.store_events([to_row(e, json.dumps(e), None, NOW) for e in dataset.events])
    storage.fetchall("ANALYZE")
    yield storage
    storage.close()


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)))
def test_a_stored_time_reads_back_as_the_event_time_it_was(sqlite: SqliteStorage, moment: datetime) -> None:
    """SQLite's shortcut from stored text to an event's ``time`` agrees with parsing and writing it."""
    assert sqlite.time_text(sqlite.time_param(moment)) == utc_now_iso(moment)


def test_sqlite_pages_in_table_order_even_with_statistics(
    sqlite: SqliteStorage, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ANALYZE, SQLite would rather page by the (type, time) index and sort each page; every
    read_events query must stay a table scan in rowid order, whatever its filter."""
    issued: list[tuple[str, list]] = []
    fetchall = sqlite.fetchall
    monkeypatch.setattr(
        sqlite, "fetchall", lambda sql, params=(): issued.append((sql, list(params))) or fetchall(sql, params)
    )
    start = dataset.start + timedelta(days=3)
    expected = sorted(e["id"] for e in dataset.events if e["time"] >= utc_now_iso(start))
    assert sorted(e["id"] for e in sqlite.read_events(start=start, page=500)) == expected
    assert [e["id"] for e in sqlite.read_events(names=("purchase.completed",), page=50)] == [
        e["id"] for e in dataset.events if e["type"] == "touchpoint.purchase.completed"
    ]
    monkeypatch.undo()
    assert len(issued) > 4 and any("(rowid) >" in sql for sql, _ in issued)
    for sql, params in issued:
        plan = " ".join(str(row[-1]) for row in sqlite.fetchall(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "USING INDEX" not in plan and "TEMP B-TREE" not in plan, plan
