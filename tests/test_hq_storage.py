"""HQ storage: the same behaviour on SQLite and PostgreSQL, idempotent and safe under concurrency."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.envelope import make_event, parse_time
from hq.core.intake import parse_events, parse_status, to_row
from hq.core.records import EPOCH, DeviceBatch, DeviceStatus, EventRow, hour_of, hour_start
from hq.storage import Storage, StorageError, open_storage, schema
from hq.storage.rows import decode_data
from hq.storage.sql import INSERT_EVENT, SqlStorage
from tests.conftest import SOURCE, make_storage
from tests.hq_support import BACKENDS, NOW, events, events_topic, payload, terminate_other_backends


def store(storage: Storage, seqs: list[int], extra: list[object] | None = None) -> int:
    """Store a batch of the test device's events; returns the contiguous seq after the commit."""
    batch = parse_events(events_topic(), payload([*events(seqs), *(extra or [])]), NOW)
    assert isinstance(batch, DeviceBatch)
    return storage.store_device_batch(batch).contiguous_seq


def store_at(storage: Storage, times: dict[int, datetime]) -> int:
    """Store one batch of the test device's events, seq -> time; returns how many were new."""
    made = events(times)
    for event in made:
        event["time"] = times[event["seq"]].isoformat()
    batch = parse_events(events_topic(), payload(made), NOW)
    assert isinstance(batch, DeviceBatch) and not batch.dead
    return storage.store_device_batch(batch).stored


def web_row(time: datetime) -> EventRow:
    web = make_event("page.viewed", {"anonymous_id": "a1"}, source="/channels/web/shop", time=time)
    return to_row(web, json.dumps(web), None, time)  # received as it happened: inside intake's window


def test_schema_is_versioned_and_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hq.db"
    with open_storage(url) as first:
        store(first, [1])
    with open_storage(url) as again:
        assert isinstance(again, SqlStorage) and again.schema_version() == schema.LATEST
        assert again.fetchall("SELECT COUNT(*) FROM schema_version") == [(len(schema.MIGRATIONS),)]
        assert again.devices()[0].stored == 1


def test_memory_databases_and_unknown_urls_are_refused() -> None:
    with pytest.raises(StorageError, match="database file"):
        open_storage("sqlite:///:memory:")
    with pytest.raises(StorageError, match="unsupported"):
        open_storage("mysql://x")


def test_duplicates_are_stored_once(storage: Storage) -> None:
    batch = parse_events(events_topic(), payload(events([1, 2, 3])), NOW)
    assert isinstance(batch, DeviceBatch)
    first = storage.store_device_batch(batch)
    again = storage.store_device_batch(batch)
    assert (first.stored, first.duplicates, first.contiguous_seq) == (3, 0, 3)
    assert (again.stored, again.duplicates, again.contiguous_seq) == (0, 3, 3)
    assert storage.fetchall("SELECT COUNT(*) FROM events") == [(3,)]
    assert storage.devices()[0].stored == 3


def test_out_of_order_batches_give_gaps_until_filled(storage: Storage) -> None:
    assert store(storage, [1, 2]) == 2
    assert store(storage, [6, 7]) == 2
    assert store(storage, [4]) == 2
    (device,) = storage.devices()
    assert (device.contiguous_seq, device.stored, device.gaps) == (2, 5, ((3, 3), (5, 5)))
    assert device.to_json()["gaps"] == [[3, 3], [5, 5]]
    assert store(storage, [3, 5]) == 7
    assert storage.devices()[0].gaps == ()


def test_dead_lettered_events_close_their_seq_and_are_readable(storage: Storage) -> None:
    broken = events([2])[0]
    broken["data"].pop("via")
    assert store(storage, [1, 3], [broken]) == 3
    (letter,) = storage.dead_letters()
    assert letter.reason.startswith("data.via") and letter.kind == "data.via"
    assert json.loads(letter.raw)["seq"] == 2 and letter.topic == events_topic()
    assert (letter.source, letter.received_at) == (SOURCE, NOW)
    refused = parse_events(events_topic(), b"[oops", NOW + timedelta(seconds=1))
    storage.store_dead_letters(refused.dead)  # type: ignore[union-attr]
    newest = storage.dead_letters(limit=1)
    assert [d.raw for d in newest] == [b"[oops"] and newest[0].to_json()["kind"] == "json"
    assert storage.devices()[0].stored == 2


def test_status_sets_online_backlog_and_last_seen(storage: Storage) -> None:
    topic = "touchpoint/v1/test-store/mirror-1/status"
    online = parse_status(topic, b'{"state": "online", "backlog": 12}', NOW)
    assert isinstance(online, DeviceStatus)
    storage.record_status(online)
    (device,) = storage.devices()
    assert (device.online, device.backlog, device.last_seen, device.stored) == (True, 12, NOW, 0)
    will = parse_status(topic, b'{"state": "offline"}', NOW + timedelta(minutes=1))
    assert isinstance(will, DeviceStatus)
    storage.record_status(will)
    (device,) = storage.devices()
    assert (device.online, device.backlog, device.last_seen) == (False, 12, NOW + timedelta(minutes=1))


def test_digital_events_are_stored_idempotently_with_their_channel(storage: Storage) -> None:
    web = make_event("page.viewed", {"anonymous_id": "a1", "customer": "c1"}, source="/channels/web/shop", time=NOW)
    row = to_row(web, json.dumps(web), None, NOW)
    assert storage.store_events([row, row]) == 1
    assert storage.store_events([row]) == 0
    ((channel, customer, seq, data, time),) = storage.fetchall(
        "SELECT channel, customer, seq, data, time FROM events WHERE source = ?", (web["source"],)
    )
    assert (channel, customer, seq) == ("web", "c1", None)
    assert decode_data(data) == web["data"]
    assert storage.time_value(time) == parse_time(web["time"])
    after = parse_time(web["time"]) + timedelta(microseconds=1)
    assert storage.fetchall("SELECT COUNT(*) FROM events WHERE time < ?", (storage.time_param(after),)) == [(1,)]
    assert storage.fetchall("SELECT COUNT(*) FROM events WHERE time >= ?", (storage.time_param(after),)) == [(0,)]


def test_storing_events_bumps_their_hours_and_only_new_ones_do(storage: Storage) -> None:
    hour = hour_of(NOW)
    first = {1: NOW, 2: NOW + timedelta(minutes=59, seconds=59), 3: NOW + timedelta(hours=2)}
    assert store_at(storage, first) == 3
    versions = storage.hour_versions(hour - 24, hour + 24)
    assert set(versions) == {hour, hour + 2}
    assert store_at(storage, first) == 0  # a re-sent batch changes nothing
    assert storage.hour_versions(hour - 24, hour + 24) == versions
    assert store_at(storage, {4: NOW + timedelta(minutes=30)}) == 1
    later = storage.hour_versions(hour - 24, hour + 24)
    assert later[hour] > versions[hour] and later[hour + 2] == versions[hour + 2] and len(later) == 2
    assert storage.hour_versions(hour + 1, hour + 2) == {} and list(storage.hour_versions(hour, hour + 1)) == [hour]


def test_digital_events_bump_their_hours_too(storage: Storage) -> None:
    row = web_row(NOW - timedelta(days=400))
    assert storage.store_events([row]) == 1
    versions = storage.hour_versions(hour_of(row.time) - 1, hour_of(row.time) + 2)
    assert list(versions) == [hour_of(row.time)]
    assert storage.store_events([row]) == 0
    assert storage.hour_versions(hour_of(row.time) - 1, hour_of(row.time) + 2) == versions


def test_hours_count_from_1970_and_floor_before_it() -> None:
    assert hour_of(EPOCH) == 0 and hour_of(EPOCH - timedelta(microseconds=1)) == -1
    assert hour_start(-1) == datetime(1969, 12, 31, 23, tzinfo=timezone.utc)
    assert hour_of(NOW) * 3600 == NOW.timestamp() and hour_start(hour_of(NOW)) == NOW
    with pytest.raises(TypeError):
        hour_of(datetime(2026, 1, 1))


@given(moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()))
def test_every_moment_lies_in_its_hour(moment: datetime) -> None:
    hour = hour_of(moment)
    assert hour_start(hour) <= moment < hour_start(hour + 1)
    assert hour_start(hour).tzinfo is timezone.utc


@given(
    hour=st.integers(
        hour_of(datetime(1, 1, 1, tzinfo=timezone.utc)), hour_of(datetime(9999, 12, 31, tzinfo=timezone.utc))
    ),
    into=st.timedeltas(timedelta(0), timedelta(hours=1) - timedelta(microseconds=1)),
)
def test_hour_start_inverts_hour_of_across_the_hour(hour: int, into: timedelta) -> None:
    assert hour_of(hour_start(hour) + into) == hour


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moment=st.datetimes(timezones=st.just(timezone.utc)))
def test_the_migrations_hour_of_a_stored_time_is_hour_of(storage: Storage, moment: datetime) -> None:
    """The backfill's SQL agrees with Python, also a hair before an hour and before 1970."""
    types = schema.TYPES[storage.dialect]
    sql = f"SELECT {types['hour_of_time']} FROM (SELECT CAST(? AS {types['ts']}) AS time) AS t"
    assert storage.fetchall(sql, (storage.time_param(moment),)) == [(hour_of(moment),)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_3_backfills_the_hours_of_events_stored_before_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    times = [
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
        NOW - timedelta(microseconds=100),
        NOW,
        NOW + timedelta(minutes=5),
        NOW + timedelta(hours=3),
    ]
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        with make_storage(backend, tmp_path, request) as old:
            assert isinstance(old, SqlStorage) and old.schema_version() == 2
            with old.transaction() as cur:  # as version 2 stored them: no event_hours yet
                cur.executemany(INSERT_EVENT, old._events_params([web_row(t) for t in times]))
    with make_storage(backend, tmp_path, request) as new:
        assert isinstance(new, SqlStorage) and new.schema_version() == schema.LATEST
        assert new.hour_versions(-(10**9), 10**9) == {hour_of(t): 1 for t in times}
        assert new.store_events([web_row(NOW + timedelta(minutes=10))]) == 1
        assert new.hour_versions(hour_of(NOW), hour_of(NOW) + 1) == {hour_of(NOW): 2}


def test_time_ranges_are_read_through_an_index(tmp_path: Path) -> None:
    with open_storage(f"sqlite:///{tmp_path}/hq.db") as storage:
        plan = storage.fetchall(
            "EXPLAIN QUERY PLAN SELECT * FROM events WHERE time >= ? AND time < ?",
            (storage.time_param(NOW), storage.time_param(NOW + timedelta(hours=1))),
        )
    assert [detail for *_, detail in plan] == ["SEARCH events USING INDEX events_time (time>? AND time<?)"]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_batches_of_one_device_keep_contiguous_right(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two workers, each with its own connection, store overlapping batches in random order."""
    storages = [make_storage(backend, tmp_path, request) for _ in range(2)]  # one database
    total = 400
    batches = [list(range(first, min(first + 10, total + 1))) for first in range(1, total + 1, 10)]
    rng = random.Random(7)
    plans = [rng.sample(batches, len(batches)), rng.sample(batches, len(batches) // 2)]
    outcomes: list[int] = []

    def work(storage: Storage, plan: list[list[int]]) -> None:
        for seqs in plan:
            outcomes.append(store(storage, seqs))

    threads = [threading.Thread(target=work, args=pair) for pair in zip(storages, plans)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (device,) = storages[0].devices()
    assert (device.contiguous_seq, device.stored, device.gaps) == (total, total, ())
    assert storages[0].fetchall("SELECT COUNT(*), MIN(seq), MAX(seq) FROM events") == [(total, 1, total)]
    assert max(outcomes) == total
    for each in storages:
        each.close()


@pytest.mark.postgres
def test_a_dropped_postgres_connection_fails_one_call_then_reconnects(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    storage = make_storage("postgres", tmp_path, request)
    try:
        assert store(storage, [1]) == 1
        terminate_other_backends(storage)
        with pytest.raises(psycopg.OperationalError):
            store(storage, [2])
        assert store(storage, [2, 3]) == 3
    finally:
        storage.close()


any_text = st.text(st.characters(exclude_categories=()), max_size=12)
json_data = st.dictionaries(
    any_text,
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=json_data, text=any_text | st.integers(), moment=st.datetimes(timezones=st.timezones()))
def test_whatever_validation_accepts_the_database_stores(
    storage: Storage, data: dict[str, object], text: object, moment: datetime
) -> None:
    """Odd text (NUL, lone surrogates), huge numbers and far-off times never stop ingestion."""
    (seq,) = storage.fetchall("SELECT COUNT(*) + 1 FROM events")[0]
    event = events([int(seq)])[0]
    event["data"] = {**data, "session_id": text, "customer": text, "gtin": text, "via": "tag"}
    event["time"] = moment.isoformat()
    batch = parse_events(events_topic(), payload([event]), NOW)
    assert isinstance(batch, DeviceBatch) and len(batch.events) + len(batch.dead) == 1
    storage.store_device_batch(batch)
    if batch.events:
        ((stored_data,),) = storage.fetchall("SELECT data FROM events WHERE id = ?", (event["id"],))
        assert exact(decode_data(stored_data)) == exact(json.loads(batch.events[0].data))


def exact(value: object) -> object:
    """Numbers as decimals: JSONB keeps a number's decimal value, not whether it was written as a float."""
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(repr(value))
    return value
