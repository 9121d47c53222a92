"""HQ analytics benchmark: stitching, metrics and recommendations over about a million events.

    .venv/bin/python -m bench.bench_analytics                       # ~1,000,000 events
    .venv/bin/python -m bench.bench_analytics --customers 3000      # ~100,000, a quick run
    .venv/bin/python -m bench.bench_analytics --storage             # also read back through SQLite

The events come from the test generator (``tests/hq_dataset.py``). Every stage is timed over the
same events and reported per event and as a multiple of the baseline measured in the same run:
one pass that parses each event's time and name, the least any analytics pass must do.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from contract.catalog import parse
from contract.envelope import event_name, parse_time
from hq.core.identity import IdentityGraph, attributed, stitch
from hq.core.intake import to_row
from hq.core.recommend import Recommender
from hq.core.report import Window, compute
from hq.storage import open_storage
from tests.hq_dataset import generate

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def baseline(events: list[dict[str, Any]]) -> None:
    for event in events:
        parse_time(event["time"])
        event_name(event)


def delayed(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Arrival as ingest sees it: time order, but a tenth of the sources sync up to a day late."""
    rng = random.Random(seed)
    lag = {
        source: timedelta(hours=rng.uniform(0, 24)) if rng.random() < 0.1 else timedelta(0)
        for source in sorted({e["source"] for e in events})
    }
    return sorted(events, key=lambda e: parse_time(e["time"]) + lag[e["source"]])


def incremental(events: list[dict[str, Any]], batch: int) -> None:
    """Events arriving in random order, ``batch`` at a time, each batch re-attributing as it lands."""
    graph = IdentityGraph()
    for i in range(0, len(events), batch):
        graph.add_events(events[i : i + batch])


def storage_stages(events: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """Read every event back through ``Storage.read_events`` against a raw sqlite3 scan of the same table."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hq.db"
        with open_storage(f"sqlite:///{path}") as storage:
            rows = [to_row(e, json.dumps(e), None, NOW) for e in events]
            for i in range(0, len(rows), 20_000):
                storage.store_events(rows[i : i + 20_000])
            paged = timed(lambda: sum(1 for _ in storage.read_events()))
        conn = sqlite3.connect(path)
        try:
            raw = timed(lambda: [json.loads(r[1]) for r in conn.execute("SELECT id, data FROM events")])
        finally:
            conn.close()
    return [("sqlite: raw scan + json.loads (reference)", raw), ("sqlite: read_events (paged envelopes)", paged)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=31_000, help="shoppers to generate (~32 events each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--storage", action="store_true", help="also time reading back through SQLite")
    args = parser.parse_args()

    started = time.perf_counter()
    data = generate(seed=args.seed, customers=args.customers)
    events = data.events
    print(
        f"{len(events):,} events from {args.customers:,} shoppers, generated in {time.perf_counter() - started:.0f} s"
    )
    shuffled = list(events)
    random.Random(args.seed).shuffle(shuffled)
    late = delayed(events, args.seed)
    catalog = parse(data.catalog, origin="bench", image_root=None)
    window = Window(data.start, data.start + timedelta(days=30))

    base = timed(lambda: baseline(events))
    graph = stitch(events)
    attributed_events = list(attributed(events, graph))

    def recommend() -> None:
        rec = Recommender(catalog, graph.consent_of, data.end)
        for item in attributed_events:
            rec.add(item)
        for store in ("berlin-01", "hamburg-02", "munich-03", "cologne-04"):
            rec.message(store)

    stages = [
        ("baseline: parse time and name", base),
        ("stitch (batch, time-sorted links)", timed(lambda: stitch(events))),
        ("stitch (incremental, 10% of sources a day late, batches of 500)", timed(lambda: incremental(late, 500))),
        ("stitch (incremental, shuffled, batches of 500)", timed(lambda: incremental(shuffled, 500))),
        ("stitch (incremental, shuffled, one event at a time)", timed(lambda: incremental(shuffled, 1))),
        ("attribute every event", timed(lambda: list(attributed(events, graph)))),
        ("metrics: compute (30-day window)", timed(lambda: compute(attributed_events, window))),
        ("recommendations: 4 store messages", timed(recommend)),
    ]
    if args.storage:
        stages += storage_stages(events)
    print("\n| stage | s | us/event | x baseline |\n|---|---|---|---|")
    for name, seconds in stages:
        print(f"| {name} | {seconds:.2f} | {seconds / len(events) * 1e6:.1f} | {seconds / base:.1f} |")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak_mb:,.0f} MB; persons {len(graph.persons()):,}; conflicts {len(graph.conflicts()):,}")


if __name__ == "__main__":
    main()
