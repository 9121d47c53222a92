"""What keeping identity in the database costs at ingest: the generated dataset stored in batches.

    .venv/bin/python -m bench.bench_identity                      # 400 and 1,600 customers, SQLite
    .venv/bin/python -m bench.bench_identity --customers 400 --postgres

The dataset (``tests/hq_dataset.py``) has link events in the proportion real stores send them
(about 6 % of all events: loyalty scans, hand-offs, logins). In one run, into fresh databases of
the same kind: raw ``executemany`` of the rows (the baseline), ``Storage.store_events`` of every
row but the link events (events, hours and seq work, no identity upkeep), and ``store_events`` of
every row (identity filed and restitched in the same transactions). Each is the best of
``--repeat`` runs; batches of 500 rows, as a device or web shop sends them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone

from hq.core.intake import to_row
from hq.core.records import EventRow
from hq.storage import Storage, open_storage
from hq.storage.identity import LINK_TYPES
from hq.storage.sql import INSERT_EVENT, SqlStorage
from tests.hq_dataset import generate
from touchpoint.services import PostgresCluster

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)
BATCH = 500


def raw_insert(storage: Storage, rows: list[EventRow]) -> None:
    assert isinstance(storage, SqlStorage)
    for i in range(0, len(rows), BATCH):
        with storage.transaction() as cur:
            cur.executemany(INSERT_EVENT, storage._events_params(rows[i : i + BATCH]))


def store(storage: Storage, rows: list[EventRow]) -> None:
    for i in range(0, len(rows), BATCH):
        storage.store_events(rows[i : i + BATCH])


def best_rate(
    fresh: Callable[[], AbstractContextManager[Storage]],
    write: Callable[[Storage, list[EventRow]], None],
    rows: list[EventRow],
    repeat: int,
) -> float:
    """Rows per second, the best of ``repeat`` runs into a fresh database each."""
    best = 0.0
    for _ in range(repeat):
        with fresh() as storage:
            started = time.perf_counter()
            write(storage, rows)
            best = max(best, len(rows) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[400, 1600])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL in a temporary cluster instead of SQLite")
    args = parser.parse_args()
    with PostgresCluster() if args.postgres else nullcontext() as cluster:
        databases = iter(range(10**6))

        @contextmanager
        def fresh() -> Iterator[Storage]:
            if cluster is None:
                with tempfile.TemporaryDirectory() as tmp:
                    with open_storage(f"sqlite:///{tmp}/hq.db") as storage:
                        yield storage
            else:
                with open_storage(cluster.create_database(f"bench_identity_{next(databases)}")) as storage:
                    yield storage

        print(
            f"{'customers':>9} {'events':>8} {'links':>6} {'raw/s':>9} {'no upkeep/s':>12} {'with upkeep/s':>14}"
            f" {'upkeep/no':>10} {'upkeep/raw':>11}"
        )
        for customers in args.customers:
            rows = [to_row(e, json.dumps(e), None, NOW) for e in generate(seed=9, customers=customers).events]
            plain = [row for row in rows if row.type not in LINK_TYPES]
            raw = best_rate(fresh, raw_insert, rows, args.repeat)
            without = best_rate(fresh, store, plain, args.repeat)
            with_upkeep = best_rate(fresh, store, rows, args.repeat)
            print(
                f"{customers:>9} {len(rows):>8,} {len(rows) - len(plain):>6,} {raw:>9,.0f} {without:>12,.0f}"
                f" {with_upkeep:>14,.0f} {with_upkeep / without:>10.2f} {with_upkeep / raw:>11.2f}"
            )


if __name__ == "__main__":
    main()
