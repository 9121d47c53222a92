"""Identity kept in the database equals the in-memory core (``stitch``) over the same events: in any
arrival order and batching, after API consent statements, after erasure, with concurrent writers."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from contract.envelope import make_event
from hq.core.identity import ConsentChange, stitch
from hq.core.intake import to_row
from hq.storage import Storage, schema
from hq.storage.sql import INSERT_EVENT, SqlStorage
from tests.conftest import make_storage
from tests.hq_dataset import Dataset, generate
from tests.hq_support import BACKENDS
from touchpoint.cli import main

NOW = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(seed=5, customers=150)


def store(storage: Storage, events: list[dict], batch: int) -> None:
    for i in range(0, len(events), batch):
        storage.store_events([to_row(e, json.dumps(e), None, NOW) for e in events[i : i + batch]])


def expected(events: list[dict], *consents: ConsentChange) -> dict[str, str]:
    graph = stitch(events)
    for change in consents:
        graph.set_consent(change)
    return dict(graph.stitched())


@pytest.mark.parametrize("seed", [1, 2])
def test_persons_equal_the_core_in_any_arrival_order(storage: Storage, dataset: Dataset, seed: int) -> None:
    events = list(dataset.events)
    random.Random(seed).shuffle(events)
    store(storage, events, batch=random.Random(seed).choice([37, 500]))
    want = expected(dataset.events)
    assert len(want) > 100  # the dataset stitches: the comparison has something to compare
    assert storage.stitched() == want
    some = sorted(want)[:20] + ["customer:nobody", "anon:nobody"]
    assert storage.persons_of(some) == {i: want[i] for i in some if i in want}
    person = want[some[0]]
    assert storage.person_members(person) == frozenset(i for i, p in want.items() if p == person)


def test_resent_events_change_nothing(storage: Storage, dataset: Dataset) -> None:
    store(storage, dataset.events, batch=500)
    before = storage.stitched()
    store(storage, dataset.events[::3], batch=200)
    assert storage.stitched() == before == expected(dataset.events)


def test_an_api_consent_statement_restitches_that_customer_only(storage: Storage, dataset: Dataset) -> None:
    store(storage, dataset.events, batch=500)
    stitched = expected(dataset.events)
    customer = next(p for p in sorted(set(stitched.values())) if p.startswith("customer:"))
    revoked = ConsentChange(NOW + timedelta(days=400), "api-1", customer, "revoked")
    storage.set_consent(revoked)
    assert customer not in storage.stitched().values()
    assert storage.stitched() == expected(dataset.events, revoked)
    assert storage.consent_states()[customer] == "revoked"
    granted = ConsentChange(NOW + timedelta(days=401), "api-2", customer, "granted")
    storage.set_consent(granted)
    assert storage.stitched() == expected(dataset.events, revoked, granted)


def test_erasure_restitches_as_if_the_events_had_never_come(storage: Storage, dataset: Dataset) -> None:
    store(storage, dataset.events, batch=500)
    stitched = expected(dataset.events)
    customer = next(p for p in sorted(set(stitched.values())) if p.startswith("customer:"))
    graph = stitch(dataset.events)
    doomed = [e for e in dataset.events if graph.attribute(e) == customer]
    assert doomed
    storage.erase([(e["source"], e["id"]) for e in doomed], [customer.split(":", 1)[1]], customer.split(":", 1)[1])
    kept = [e for e in dataset.events if e not in doomed]
    assert storage.stitched() == expected(kept)
    assert customer not in storage.stitched().values()


def test_a_late_link_joins_two_persons_by_updating_their_rows(storage: Storage) -> None:
    web = "/channels/web/shop"
    older = make_event("customer.logged_in", {"anonymous_id": "a-1", "customer": "c-1"}, source=web, time=NOW)
    newer = make_event(
        "customer.logged_in", {"anonymous_id": "a-2", "customer": "c-1"}, source=web, time=NOW + timedelta(hours=1)
    )
    store(storage, [newer], batch=10)
    assert storage.stitched() == {"anon:a-2": "customer:c-1", "customer:c-1": "customer:c-1"}
    store(storage, [older], batch=10)  # arrives late, but is earlier
    assert storage.stitched() == expected([older, newer])


@pytest.mark.postgres
def test_concurrent_writers_on_postgres_agree_with_the_core(postgres_url: str, dataset: Dataset) -> None:
    """Two threads (as two ingest workers) store interleaved halves; the result is the core's."""
    from hq.storage import open_storage

    storage = open_storage(postgres_url)
    try:
        events = list(dataset.events)
        random.Random(3).shuffle(events)
        halves = [events[0::2], events[1::2]]
        errors: list[BaseException] = []

        def work(part: list[dict]) -> None:
            try:
                store(storage, part, batch=50)
            except BaseException as error:  # reported below: a thread's failure must fail the test
                errors.append(error)

        threads = [threading.Thread(target=work, args=(half,)) for half in halves]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors
        assert storage.stitched() == expected(dataset.events)
    finally:
        storage.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_upgrade_builds_identity_from_the_stored_link_events(
    backend: str, dataset: Dataset, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database of version 3 (events, no identity tables) upgraded with ``touchpoint hq migrate``."""
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:3])
        with make_storage(backend, tmp_path, request) as old:
            assert isinstance(old, SqlStorage) and old.schema_version() == 3
            with old.transaction() as cur:  # as version 3 stored them: no evidence filed
                rows = [to_row(e, json.dumps(e), None, NOW) for e in dataset.events]
                cur.executemany(INSERT_EVENT, old._events_params(rows))
    url = f"sqlite:///{tmp_path}/hq.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    config = tmp_path / "hq.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    with make_storage(backend, tmp_path, request) as new:
        assert new.pending_backfill() > 100 and new.stitched() == {}
    result = CliRunner().invoke(main, ["hq", "migrate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "identity built" in result.output
    with make_storage(backend, tmp_path, request) as new:
        assert new.pending_backfill() == 0
        assert new.stitched() == expected(dataset.events)
    again = CliRunner().invoke(main, ["hq", "migrate", "--config", str(config)])
    assert again.exit_code == 0 and "nothing to do" in again.output
