"""Where an event's time goes on the delivery path, stage by stage, each alone on one core.

The sustained figures of ``bench_sync`` and ``bench_hq`` are a chain of stages on shared cores;
this times each stage by itself on the same events (the outbox's own bytes), so a reader can see
which stage bounds the chain and what the raw broker rate would demand of each:

* agent: ``Outbox.pending`` plus the batch join (what a publish needs), ``Outbox.acknowledge``
  per ack of one batch (the DELETE);
* test acknowledger: ``json.loads`` of each batch (the least any HQ must do);
* HQ: ``hq.core.intake.parse_events`` (JSON, envelope rules, rows) and ``store_device_batch`` into
  SQLite (``synchronous=FULL``, one commit per batch, every index of the schema).

    .venv/bin/python -m bench.bench_delivery_costs            # 100,000 events, batches of 500
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from bench.bench_sync import STORE, fill, payloads
from contract.topics import DeviceTopics
from hq.core.intake import parse_events
from hq.core.records import DeviceBatch
from hq.storage import open_storage
from sync.outbox import Outbox

DEVICE = DeviceTopics(STORE, "costs")


def timed(step: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds of this thread, wall seconds): on a shared machine the first is the steadier,
    the second includes waiting, for the disk above all."""
    cpu, wall = time.thread_time(), time.perf_counter()
    step()
    return time.thread_time() - cpu, time.perf_counter() - wall


def measure(events: int, batch: int, workdir: Path) -> dict[str, tuple[float, float]]:
    """Microseconds per event of each stage: (CPU, wall)."""
    db = workdir / "edge.db"
    fill(db, DEVICE.device, events)
    bodies = payloads(db, DEVICE.device, events, batch)
    box = Outbox(db, f"/stores/{STORE}/devices/{DEVICE.device}")
    try:

        def read_all() -> None:
            after = 0
            while chunk := box.pending(after, batch, 256 * 1024 - 2):
                b"[" + b",".join(e.body for e in chunk) + b"]"
                after = chunk[-1].seq

        costs = {"agent: Outbox.pending + join": timed(read_all)}
        costs["agent: Outbox.acknowledge (DELETE)"] = timed(
            lambda: [box.acknowledge(upto) for upto in range(batch, events + batch, batch)]
        )
    finally:
        box.close()
    costs["acknowledger: json.loads"] = timed(lambda: [json.loads(body) for body in bodies])
    now = datetime.now(timezone.utc)
    parsed: list[DeviceBatch] = []
    costs["HQ: parse_events"] = timed(
        lambda: parsed.extend(
            p for p in (parse_events(DEVICE.events, body, now) for body in bodies) if isinstance(p, DeviceBatch)
        )
    )
    with open_storage(f"sqlite:///{workdir / 'hq.db'}") as storage:
        costs["HQ: store_device_batch (SQLite)"] = timed(lambda: [storage.store_device_batch(b) for b in parsed])
    return {name: (cpu / events * 1e6, wall / events * 1e6) for name, (cpu, wall) in costs.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="events per batch, as [mqtt] batch_events")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-costs-") as tmp:
        costs = measure(args.events, args.batch, Path(tmp))
    print(f"{args.events:,} events in batches of {args.batch}, each stage alone")
    print("| stage | CPU us/event | wall us/event | events/s alone (wall) |\n|---|---|---|---|")
    for name, (cpu, wall) in costs.items():
        print(f"| {name} | {cpu:.1f} | {wall:.1f} | {1e6 / wall:,.0f} |")


if __name__ == "__main__":
    main()
