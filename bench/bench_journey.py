"""HQ API benchmark: the journey endpoint, the touchpoint report and recompute at a million events.

    .venv/bin/python -m bench.bench_journey                    # ~1,000,000 events, SQLite and PostgreSQL
    .venv/bin/python -m bench.bench_journey --customers 3000   # ~100,000, a quick run
    .venv/bin/python -m bench.bench_journey --no-postgres

The events come from the test generator (``tests/hq_dataset.py``) plus one customer with 1,000
events of their own (kiosk sessions and web visits, stitched through logins). Journeys go through
the real app (``create_app``, Flask's test client, the API token), so routing, auth, the graph
cache and JSON are in the time. Baselines in the same run: for journeys, the indexed SQL query
that fetches the same customer's rows by token alone, the least a journey must read; for the
touchpoint report, one SELECT of the window's events without decoding them, the least a report
computed from the events must read. The report is measured as the API serves it: cold, warm
(hours cached), after new events and after a late identity link. The stage times that the
in-memory core spends are in ``bench/bench_analytics.py``; this file measures them through storage.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import config as configuration
from contract.catalog import parse
from contract.envelope import make_event, utc_now_iso
from hq.analytics.journeys import touchpoint_report
from hq.core.intake import to_row
from hq.core.report import Window
from hq.mqtt import publisher
from hq.storage import Storage
from hq.web.app import create_app
from tests.hq_dataset import generate
from touchpoint.services import PostgresCluster

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)
TOKEN = "bench-token"
HEAVY = "cust-heavy"


def heavy_customer(start: datetime) -> list[dict[str, Any]]:
    """1,000 events of one customer: 30 kiosk sessions (25 events) and 10 web visits (25 events), so
    their 41 identifiers stay under the stitching cap of 50 per person."""
    events = []
    source = "/stores/berlin-01/devices/kiosk-99"
    for n in range(30):
        at = start + timedelta(hours=41 * n)
        session = f"heavy-s{n}"
        made = [
            make_event("session.started", {"session_id": session}, source=source, time=at),
            make_event(
                "customer.identified",
                {"session_id": session, "customer": HEAVY, "method": "qr", "consent": "granted"},
                source=source,
                time=at,
            ),
        ]
        made += [
            make_event(
                "product.viewed",
                {"session_id": session, "customer": HEAVY, "gtin": "04012345010008", "via": "tag"},
                source=source,
                time=at + timedelta(seconds=i),
            )
            for i in range(22)
        ]
        made.append(
            make_event(
                "session.ended",
                {"session_id": session, "customer": HEAVY},
                source=source,
                time=at + timedelta(minutes=3),
            )
        )
        events += made
    for n in range(10):
        at = start + timedelta(hours=127 * n + 5)
        anon = f"heavy-w{n}"
        events.append(
            make_event("customer.logged_in", {"anonymous_id": anon, "customer": HEAVY}, source="/channels/web", time=at)
        )
        events += [
            make_event(
                "page.viewed",
                {"anonymous_id": anon, "page": "product"},
                source="/channels/web",
                time=at + timedelta(seconds=i + 1),
            )
            for i in range(24)
        ]
    seq = 0
    for event in events:
        if event["source"] == source:
            seq += 1
            event["seq"] = seq
    assert len(events) == 1000
    return events


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def fill(storage: Storage, events: list[dict[str, Any]]) -> float:
    rows = [to_row(e, json.dumps(e), None, NOW) for e in events]
    seconds, _ = timed(lambda: [storage.store_events(rows[i : i + 20_000]) for i in range(0, len(rows), 20_000)])
    return seconds


@contextmanager
def backend(name: str, folder: Path) -> Iterator[str]:
    if name == "sqlite":
        yield f"sqlite:///{folder}/hq.db"
        return
    with PostgresCluster() as cluster:
        yield cluster.create_database("bench")


def measure(
    url: str, events: list[dict[str, Any]], catalog: Any, window: Window, requests: int
) -> list[tuple[str, float]]:
    config = configuration.from_dict(
        configuration.HqConfig,
        {
            "database": {"url": url},  # 80 days: every event
            "hq": {"api_token": TOKEN},
        },
    )
    app = create_app(config)
    storage: Storage = app.extensions["hq.storage"]
    try:
        results = [("store 1M events (batches of 20,000)", fill(storage, events))]
        events.clear()  # an HQ web process holds no events: a heap full of them would slow its collector
        gc.collect()
        # What autovacuum does soon after a bulk load on PostgreSQL; on SQLite it once made read_events
        # page by the (type, time) index and sort every page, so it stays in as the harder case.
        storage.fetchall("ANALYZE")
        client = app.test_client()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        warm, first = timed(lambda: client.get(f"/v1/customers/{HEAVY}/journey?limit=1000", headers=headers))
        assert first.status_code == 200 and len(first.get_json()["events"]) == 1000, first.status_code
        results.append(("journey: first request (builds the identity graph)", warm))
        raw = [
            timed(lambda: storage.fetchall("SELECT source, id, data FROM events WHERE customer = ?", (HEAVY,)))[0]
            for _ in range(requests)
        ]
        results.append(("baseline: SELECT by customer token (p99)", p99(raw)))
        for limit in (100, 1000):
            samples = [
                timed(lambda url=f"/v1/customers/{HEAVY}/journey?limit={limit}": client.get(url, headers=headers))[0]
                for _ in range(requests)
            ]
            results.append((f"journey API, 1,000-event customer, limit={limit} (p99)", p99(samples)))
            results.append((f"journey API, limit={limit} (median)", statistics.median(samples)))
        results.append(("identity: every stitched identifier read from storage", timed(storage.stitched)[0]))
        results += report_stages(app, storage, window, requests)
        results.append(
            (
                "recompute: build every store's recommendations",
                timed(lambda: publisher.build(storage, catalog, window.end))[0],
            )
        )
    finally:
        storage.close()
    return results


def report_stages(app: Any, storage: Storage, window: Window, requests: int) -> list[tuple[str, float]]:
    """``GET /v1/touchpoints`` over the window: cold, warm, after new events and after a late link."""
    client = app.test_client()
    url = f"/v1/touchpoints?from={window.start.isoformat()}&to={window.end.isoformat()}".replace("+", "%2B")
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def get() -> float:
        seconds, answer = timed(lambda: client.get(url, headers=headers))
        assert answer.status_code == 200 and answer.get_json()["touchpoints"], answer.status_code
        return seconds

    scan = [
        timed(
            lambda: storage.fetchall(
                "SELECT data FROM events WHERE time >= ? AND time < ?",
                (storage.time_param(window.start), storage.time_param(window.end)),
            )
        )[0]
        for _ in range(3)
    ]
    rows = [
        ("baseline: SELECT the window's events (no decoding)", min(scan)),
        (
            "touchpoint report, no cache (reads every hour)",
            timed(lambda: touchpoint_report(storage, window))[0],
        ),
        ("touchpoint API, first request (fills the hour cache)", get()),
    ]
    warm = [get() for _ in range(max(3, requests // 20))]
    rows += [("touchpoint API, warm (median)", statistics.median(warm)), ("touchpoint API, warm (max)", max(warm))]
    last_hour = window.end - timedelta(minutes=30)
    source = "/stores/berlin-01/devices/kiosk-99"
    fresh = [
        make_event(
            "product.viewed",
            {"session_id": f"bench-new-{n // 10}", "gtin": "04012345010008", "via": "tag"},
            source=source,
            seq=10_000 + n,
            time=last_hour + timedelta(seconds=n),
        )
        for n in range(500)
    ]
    storage.store_events([to_row(e, json.dumps(e), None, NOW) for e in fresh])
    rows.append(("touchpoint API after 500 new events in the window's last hour", get()))
    ((session,),) = storage.fetchall(
        "SELECT session_id FROM events WHERE type = 'touchpoint.session.started' AND time >= ? ORDER BY time LIMIT 1",
        (storage.time_param(window.start),),
    )
    link = make_event(
        "customer.identified",
        {"session_id": session, "customer": "bench-late", "method": "qr", "consent": "granted"},
        source=source,
        seq=20_000,
        time=window.start - timedelta(days=1),
    )
    storage.store_events([to_row(link, json.dumps(link), None, NOW)])
    rows.append(("touchpoint API after a late identity link (no hour re-read)", get()))
    ((first, last),) = storage.fetchall("SELECT MIN(time), MAX(time) FROM events")
    everything = {"from": storage.time_text(first), "to": utc_now_iso(storage.time_value(last) + timedelta(seconds=1))}
    rows.append(
        (
            "baseline: SELECT every stored event (no decoding)",
            min(timed(lambda: storage.fetchall("SELECT data FROM events"))[0] for _ in range(3)),
        )
    )
    whole = [
        timed(lambda: client.get("/v1/touchpoints", query_string=everything, headers=headers))[0] for _ in range(4)
    ]
    rows.append(("touchpoint API, every stored event, warm (median of 3)", statistics.median(whole[1:])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=31_000, help="shoppers to generate (~32 events each)")
    parser.add_argument("--requests", type=int, default=200, help="journey requests per measurement")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    for name in ("sqlite",) if args.no_postgres else ("sqlite", "postgres"):
        data = generate(seed=1, customers=args.customers)  # again per backend: measure() lets the events go
        events = data.events + heavy_customer(data.start)
        catalog = parse(data.catalog, origin="bench", image_root=None)
        # 30 days that cut an hour at each end, as "the last 30 days" from the dashboard does.
        start = data.start + timedelta(days=12, minutes=13, seconds=7)
        window = Window(start, start + timedelta(days=30))
        print(f"{len(events):,} events ({args.customers:,} shoppers + one with 1,000)")
        del data
        with tempfile.TemporaryDirectory() as folder, backend(name, Path(folder)) as url:
            rows = measure(url, events, catalog, window, args.requests)
        token = dict(rows)["baseline: SELECT by customer token (p99)"]
        scan = dict(rows)["baseline: SELECT the window's events (no decoding)"]
        print(f"\n{name}\n\n| stage | ms | x its baseline |\n|---|---|---|")
        every = dict(rows)["baseline: SELECT every stored event (no decoding)"]
        for stage, seconds in rows:  # journeys against the token SELECT, reports against the scan of their events
            base = every if "every stored event" in stage else scan if stage.startswith("touchpoint") else token
            print(f"| {stage} | {seconds * 1000:,.1f} | {seconds / base:,.1f} |")


if __name__ == "__main__":
    main()
