"""Touchpoint reports from the database's rollups equal the in-memory oracle, on both databases.

``hq.core.report.compute`` over the attributed events is the reference; the report HQ serves is
SQL over ``rollup_*`` and ``persons``. They must agree on the generated dataset, through new
events, a late link, re-sent batches, any arrival order, erasure and the upgrade backfill.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contract.envelope import make_event
from hq.analytics.journeys import touchpoint_report
from hq.analytics.people import erase
from hq.core.identity import attributed, stitch
from hq.core.intake import to_row
from hq.core.report import Report, Window, compute
from hq.core.rollup_report import whole_hours
from hq.storage import Storage, open_storage, schema
from hq.storage.rollups import ROLLUP_TABLES
from hq.storage.sql import INSERT_EVENT, SqlStorage
from tests.conftest import make_storage
from tests.hq_dataset import Dataset, generate
from tests.hq_support import BACKENDS, NOW, same
from touchpoint.cli import main


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(seed=34, customers=150)


def rows_of(events: list[dict[str, Any]]) -> list[Any]:
    return [to_row(e, json.dumps(e), None, NOW) for e in events]


def check(storage: Storage, events: list[dict[str, Any]], window: Window, store: str | None = None) -> Report:
    got = touchpoint_report(storage, window, store)
    hours = whole_hours(window)
    assert got.window == hours
    same(got, compute(attributed(events, stitch(events)), hours, store))
    return got


def rollups(storage: Storage) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(storage.fetchall(f"SELECT * FROM {table}")) for table in ROLLUP_TABLES}


def test_reports_equal_the_oracle_for_windows_and_stores(storage: Storage, dataset: Dataset) -> None:
    assert storage.store_events(rows_of(dataset.events)) == len(dataset.events)
    start = dataset.start
    windows = [
        Window(start + timedelta(days=7, minutes=17), start + timedelta(days=40, minutes=-5)),  # cut hours: widened
        Window(start, dataset.end + timedelta(days=5)),
        Window(start + timedelta(days=30), start + timedelta(days=31)),
        Window(start - timedelta(days=30), start - timedelta(days=1)),  # before any event
    ]
    for window in windows:
        for store in (None, "berlin-01", "munich-03"):
            check(storage, dataset.events, window, store)
    report = touchpoint_report(storage, windows[1])
    assert report.touchpoints and report.size_requests and report.paths and report.funnel[0].persons > 100
    assert any(m.conversion for m in report.touchpoints) and any(m.nps.n for m in report.touchpoints)


def test_new_events_a_late_link_and_erasure_change_the_next_report(storage: Storage, dataset: Dataset) -> None:
    events = list(dataset.events)
    storage.store_events(rows_of(events))
    window = Window(dataset.start + timedelta(days=10), dataset.start + timedelta(days=40))
    before = check(storage, events, window)
    linked = {e["data"].get("session_id") for e in events if e["type"] == "touchpoint.customer.identified"}
    session = next(
        e
        for e in events
        if e["type"] == "touchpoint.session.started"
        and "mirror" in e["source"]
        and e["data"]["session_id"] not in linked
        and e["time"] >= (window.start + timedelta(days=15)).isoformat()[:19]
    )
    at = datetime.fromisoformat(session["time"].replace("Z", "+00:00"))
    sid = session["data"]["session_id"]
    added = [
        make_event(
            "tag.arrived",
            {"session_id": sid, "zone": "cabin-1", "epc": "3034", "gtin": "04012345000009", "rssi": -40},
            source=session["source"],
            seq=900_001,
            time=at + timedelta(seconds=30),
        ),
        make_event(
            "purchase.completed",
            {"order_id": "late", "store": "berlin-01", "items": [{"gtin": "04012345000009", "qty": 1, "price": "9"}]},
            source="/channels/pos",
            time=at + timedelta(days=2),
        ),
    ]
    storage.store_events(rows_of(added))
    events += added
    unlinked = check(storage, events, window)
    assert unlinked != before

    link = make_event(
        "customer.identified",
        {"session_id": sid, "customer": "late-card", "method": "qr", "consent": "granted"},
        source=session["source"],
        seq=900_002,
        time=window.start - timedelta(days=3),  # outside the window: only persons change
    )
    version = storage.identity_version()
    storage.store_events(rows_of([link]))
    events.append(link)
    assert storage.identity_version() > version
    linked_report = check(storage, events, window)
    assert linked_report != unlinked

    customer = next(
        e["data"]["customer"]
        for e in events
        if e["type"] == "touchpoint.customer.identified"
        and e["time"] >= (window.start + timedelta(days=10)).isoformat()[:19]
        and dataset.consent.get(f"customer:{e['data']['customer']}") == "granted"
    )
    idents = stitch(events)
    members = idents.members(idents.person_of(f"customer:{customer}"))
    assert erase(storage, customer).events > 0
    check(storage, list(storage.read_events()), window)
    held = json.dumps(rollups(storage))
    assert not [m for m in members if json.dumps(m)[1:-1] in held]  # no rollup names the erased person


def test_rollups_count_nothing_twice_and_do_not_depend_on_arrival(
    backend: str, dataset: Dataset, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rows = rows_of(dataset.events)
    with make_storage(backend, tmp_path, request) as once:
        once.store_events(rows)
        expected = rollups(once)
        assert once.store_events(rows[:700]) == 0 and rollups(once) == expected  # a re-sent batch
    if backend == "sqlite":
        other = open_storage(f"sqlite:///{tmp_path}/again.db")
    else:
        other = open_storage(request.getfixturevalue("postgres_cluster").create_database(f"arrival_{id(request)}"))
    with other as shuffled:
        mixed = rows[:]
        random.Random(5).shuffle(mixed)
        for i in range(0, len(mixed), 333):
            shuffled.store_events(mixed[i : i + 333] + mixed[max(0, i - 20) : i])  # with repeats of the last batch
        assert rollups(shuffled) == expected


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_an_upgrade_files_the_rollups_of_the_stored_events(
    backend: str, dataset: Dataset, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database of version 4 (identity, no rollups) upgraded with ``touchpoint hq migrate``."""
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:4])
        with make_storage(backend, tmp_path, request) as old:
            assert isinstance(old, SqlStorage) and old.schema_version() == 4
            with old.transaction() as cur:  # as version 4 stored them: no rollups
                cur.executemany(INSERT_EVENT, old._events_params(rows_of(dataset.events)))
                old._bump_hours(cur, (row.time for row in rows_of(dataset.events)))
                cur.execute("INSERT INTO backfills (name) VALUES ('identity')")
    url = f"sqlite:///{tmp_path}/hq.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    config = tmp_path / "hq.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    with make_storage(backend, tmp_path, request) as new:
        assert new.pending_rollups() > 100 and not any(rollups(new).values())
    result = CliRunner().invoke(main, ["hq", "migrate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "rollups built" in result.output
    with make_storage(backend, tmp_path, request) as new:
        assert new.pending_rollups() == 0
        check(new, dataset.events, Window(dataset.start, dataset.end))
        new.backfill_rollups()  # done: nothing happens
        check(new, dataset.events, Window(dataset.start, dataset.end))
    again = CliRunner().invoke(main, ["hq", "migrate", "--config", str(config)])
    assert again.exit_code == 0 and "nothing to do" in again.output
