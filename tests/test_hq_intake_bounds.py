"""What no real event claims is refused at intake, over MQTT and HTTP alike (issue 13): a time
outside the window around HQ's clock, a seq far beyond the device's contiguous seq. Times HQ
writes are RFC 3339 whatever is stored, and report windows outside the accepted range are 400."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from common import config as configuration
from common.errors import ConfigError
from contract.envelope import make_event, parse_time, utc_now_iso
from hq.core.intake import SEQ_BEYOND, Bounds, parse_events, to_row
from hq.core.records import DeviceBatch
from hq.mqtt import publisher
from hq.mqtt.worker import Ingestor
from hq.prometheus import HqMetrics
from hq.storage import Storage
from tests.acknowledger import ACK_SECRET
from tests.hq_support import DEVICE, NOW, events, payload
from tests.hq_web_support import API_TOKEN, WEB_TOKEN, bearer, hq_app

ODD_TIMES = ["0001-01-01T00:00:00Z", "2126-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "1969-12-31T23:59:59Z"]


def at(time: str, seq: int = 1) -> dict:
    (event,) = events([seq])
    event["time"] = time
    return event


@pytest.mark.parametrize("time", ODD_TIMES + [utc_now_iso(NOW + timedelta(days=1, seconds=1))])
def test_an_event_time_outside_the_window_is_a_dead_letter_with_its_reason(time: str) -> None:
    batch = parse_events(DEVICE.events, payload([at(time)]), NOW)
    assert isinstance(batch, DeviceBatch) and batch.events == ()
    (letter,) = batch.dead
    assert letter.reason.startswith("time: ") and ("ahead of HQ's clock" in letter.reason or "older" in letter.reason)
    assert batch.seqs == (1,)  # it names its device and seq, so the ack still moves past it


def test_the_window_edges_and_its_configuration() -> None:
    inside = [utc_now_iso(NOW + timedelta(days=1)), utc_now_iso(NOW - timedelta(days=729))]
    batch = parse_events(DEVICE.events, payload([at(t, n) for n, t in enumerate(inside, 1)]), NOW)
    assert isinstance(batch, DeviceBatch) and len(batch.events) == 2 and batch.dead == ()
    tight = Bounds.of(configuration.IntakeSection(max_future_s=0, max_age_days=1))
    refused = parse_events(DEVICE.events, payload([at(utc_now_iso(NOW + timedelta(minutes=1)))]), NOW, tight)
    assert isinstance(refused, DeviceBatch) and refused.dead[0].reason == "time: more than 0 s ahead of HQ's clock"
    with pytest.raises(ConfigError, match="intake.max_age_days"):
        configuration.from_dict(configuration.HqConfig, {"intake": {"max_age_days": 0}})
    with pytest.raises(ConfigError, match="intake.seq_window"):
        configuration.from_dict(configuration.HqConfig, {"intake": {"seq_window": "many"}})


def test_http_intake_refuses_odd_times_and_dead_letters_them(tmp_path: Path) -> None:
    with hq_app(tmp_path) as app:
        sent = []
        for time in ODD_TIMES:
            event = make_event("page.viewed", {"anonymous_id": "a-1"}, source="/channels/web/shop")
            event["time"] = time
            sent.append(event)
        answer = app.test_client().post("/v1/events", json=sent, headers=bearer(WEB_TOKEN))
        assert answer.status_code == 422
        assert [r["reason"].split(":")[0] for r in answer.get_json()["rejected"]] == ["time"] * len(ODD_TIMES)
        letters = app.test_client().get("/v1/dead-letters", headers=bearer(API_TOKEN)).get_json()
        assert len(letters) == len(ODD_TIMES) and all(d["reason"].startswith("time: ") for d in letters)


def test_utc_now_iso_writes_four_digit_years() -> None:
    assert utc_now_iso(datetime(1, 1, 1, tzinfo=timezone.utc)) == "0001-01-01T00:00:00.000Z"
    assert utc_now_iso(datetime(999, 3, 4, 5, 6, 7, 890123, tzinfo=timezone.utc)) == "0999-03-04T05:06:07.890Z"
    assert utc_now_iso(NOW) == "2026-11-23T14:00:00.000Z"


def stored_before_bounds(storage: Storage, time: str, customer: str = "c-00000001") -> None:
    """An event with an odd time as an HQ before these bounds stored it (its clock at that time)."""
    event = make_event(
        "customer.logged_in", {"anonymous_id": f"a-{time[:4]}", "customer": customer}, source="/channels/web"
    )
    event["time"] = time
    storage.store_events([to_row(event, json.dumps(event), None, parse_time(time).astimezone(timezone.utc))])


def test_journeys_and_recompute_survive_any_stored_time(storage: Storage, tmp_path: Path) -> None:
    for time in ODD_TIMES:
        stored_before_bounds(storage, time)
    with hq_app(tmp_path) as app:
        app.extensions["hq.storage"].close()
        app.extensions["hq.storage"] = storage
        journey = app.test_client().get("/v1/customers/c-00000001/journey", headers=bearer(API_TOKEN)).get_json()
        times = [event["time"] for event in journey["events"]]
        assert times[0] == "0001-01-01T00:00:00.000Z" and len(times) == len(ODD_TIMES)
        assert all(parse_time(t) for t in times)
    messages = publisher.build(storage, publisher.catalog_of(app.config["HQ"]), datetime.now(timezone.utc))
    assert isinstance(messages, dict)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("from=9999-12-01&to=9999-12-31", "to"),
        ("from=9999-12-01", "from"),
        ("from=0001-01-01&to=0001-02-01", "to"),
        ("to=0001-02-01", "to"),
        ("from=1990-01-01", "from"),
        ("from=2026-01-01T00:00:00%2B14:00&to=9999-12-31T23:59:59-14:00", "to"),
    ],
)
def test_report_windows_outside_the_accepted_range_are_400_naming_the_parameter(
    tmp_path: Path, query: str, named: str
) -> None:
    with hq_app(tmp_path) as app:
        answer = app.test_client().get(f"/v1/touchpoints?{query}", headers=bearer(API_TOKEN))
        assert answer.status_code == 400, answer.text
        assert answer.get_json()["error"].startswith(f"{named}: ")


# -- seq window ------------------------------------------------------------------------------


def test_a_seq_far_beyond_the_contiguous_one_is_refused_and_opens_no_gap(storage: Storage) -> None:
    ingestor = Ingestor(storage, HqMetrics(), ACK_SECRET)
    assert ingestor.handle(DEVICE.events, payload(events([1, 2, 3])), NOW) is not None
    ack = ingestor.handle(DEVICE.events, payload(events([4, 2**62, 1_000_003, 1_000_004])), NOW)
    assert ack is not None and ack.upto == 4
    (device,) = storage.devices()  # 3 + 1,000,000 is inside the window, seen from before this batch
    assert (device.contiguous_seq, device.gaps, device.stored) == (4, ((5, 1_000_002),), 5)
    letters = storage.dead_letters()
    assert [SEQ_BEYOND in d.reason for d in letters] == [True, True]
    assert {d.reason.split()[1] for d in letters} == {str(2**62), "1000004"}
    broken = dict(events([2**62 + 1])[0], data={})  # refused for its data, and beyond: it closes no seq either
    ingestor.handle(DEVICE.events, payload([broken]), NOW)
    assert storage.devices()[0].gaps == ((5, 1_000_002),)


def test_a_worker_behind_on_a_device_asks_the_database_before_refusing(storage: Storage) -> None:
    """Two workers share the subscription: one saw seq 1 only, the other took the device to 1,500."""
    window = Bounds(seq_window=1000)
    behind, ahead = (
        Ingestor(storage, HqMetrics(), ACK_SECRET, window),
        Ingestor(storage, HqMetrics(), ACK_SECRET, window),
    )
    behind.handle(DEVICE.events, payload(events([1])), NOW)
    ahead.handle(DEVICE.events, payload(events(range(2, 1001))), NOW)
    ahead.handle(DEVICE.events, payload(events(range(1001, 1501))), NOW)
    ack = behind.handle(DEVICE.events, payload(events([1501, 2400])), NOW)
    assert ack is not None and ack.upto == 1501 and storage.dead_letters() == []
    behind.handle(DEVICE.events, payload(events([2502])), NOW)
    assert SEQ_BEYOND in storage.dead_letters()[0].reason
