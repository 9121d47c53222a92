"""HQ ingest benchmark: events/s from MQTT into SQLite and PostgreSQL, one and two workers.

    .venv/bin/python -m bench.bench_hq                  # 20,000 events per run
    .venv/bin/python -m bench.bench_hq --events 5000 --repeat 1   # a quick run

Pre-generated batches of valid edge events from several devices are published through a real
Mosquitto; the clock runs from the first publish until the last device's ack covers its last
seq (so it includes validation, the commit and the ack). Baselines in the same run, into the
same kind of database: the ingest path without MQTT and storage (parsing and validation only),
and raw ``executemany`` of the same rows, a transaction per batch, without the ingestor.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.config import MqttSection
from common.mqtt import MqttClient
from contract.envelope import edge_source, make_event
from contract.topics import DeviceTopics
from hq.core.intake import parse_events
from hq.core.records import DeviceBatch, EventRow
from hq.mqtt.worker import Ingestor, IngestWorker
from hq.prometheus import HqMetrics
from hq.storage import Storage, open_storage
from hq.storage.sql import INSERT_EVENT
from tests.acknowledger import ACK_SECRET
from touchpoint.services import Mosquitto, PostgresCluster

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)
PROBE = "probe"  # the device whose status says the ingest workers are subscribed


def tag_events(source: str, count: int) -> list[dict[str, Any]]:
    """``count`` valid ``tag.arrived`` events of one device, seq 1 to ``count``."""
    return [
        make_event(
            "tag.arrived",
            {
                "session_id": f"s{seq // 20}",
                "zone": "cabin-1",
                "epc": "3074257BF7194E4000001A85",
                "gtin": "80614141123458",
                "rssi": -52,
            },
            source=source,
            seq=seq,
            time=NOW,
        )
        for seq in range(1, count + 1)
    ]


def make_batches(
    store: str,
    devices: int,
    per_device: int,
    batch: int,
    events: Callable[[str, int], list[dict[str, Any]]] = tag_events,
) -> list[tuple[str, bytes]]:
    """(topic, payload) for every batch, devices interleaved as a fleet would send them; ``events``
    makes each device's events (source, count), seq 1 to count."""
    queues = []
    for n in range(devices):
        device = DeviceTopics(store, f"mirror-{n}")
        made = events(edge_source(store, device.device), per_device)
        queues.append([(device.events, json.dumps(made[i : i + batch]).encode()) for i in range(0, per_device, batch)])
    return [item for round_ in zip(*queues) for item in round_]


def until_acked(
    mqtt: MqttSection,
    store: str,
    batches: list[tuple[str, bytes]],
    last: Mapping[str, int],
    subscribed: Callable[[], bool],
) -> float:
    """Publish every batch at once; seconds until each ack topic in ``last`` covers its seq there.

    ``store``'s probe device announces itself first; ``subscribed`` says when HQ has seen it."""
    acked: dict[str, int] = {}
    done = threading.Event()

    def on_ack(message: Any) -> None:
        if message.retain:  # kept by the broker from an earlier run on these topics, not this run's
            return
        acked[message.topic] = json.loads(message.payload)["upto"]
        if all(acked.get(topic, 0) >= upto for topic, upto in last.items()):
            done.set()

    listener = MqttClient(mqtt, f"bench-acks-{store}", on_message=on_ack)
    listener.subscribe([(topic, 1) for topic in last])
    publisher = MqttClient(mqtt, f"bench-pub-{store}")
    try:
        listener.start()
        publisher.start()
        for client in (listener, publisher):
            if not client.wait_connected(10):
                raise RuntimeError(f"{client.client_id}: {client.last_error}")
        publisher.publish(DeviceTopics(store, PROBE).status, b'{"state": "online"}', retain=True).wait(10)
        wait(subscribed)
        started = time.perf_counter()
        for topic, body in batches:
            publisher.publish(topic, body)
        if not done.wait(600):
            raise RuntimeError(f"acks stopped at {acked}")
        elapsed = time.perf_counter() - started
    finally:
        for client in (publisher, listener):
            client.stop()
    return elapsed


def final_acks(store: str, devices: int, per_device: int) -> dict[str, int]:
    """The ack topic of each of ``make_batches``' devices, with the last seq it must reach."""
    return {DeviceTopics(store, f"mirror-{n}").ack: per_device for n in range(devices)}


def probed(storage: Storage, store: str) -> Callable[[], bool]:
    """Whether HQ recorded ``store``'s probe: then its workers are subscribed."""
    return lambda: any(d.store == store and d.device == PROBE for d in storage.devices())


def in_process(
    url: str,
    mqtt: MqttSection,
    store: str,
    workers: int,
    batches: list[tuple[str, bytes]],
    devices: int,
    per_device: int,
) -> float:
    """``workers`` ingest workers in this process sharing one storage, as ``serve`` runs them."""
    storage = open_storage(url)
    ingestor = Ingestor(storage, HqMetrics(), ACK_SECRET)
    running = [IngestWorker(mqtt, f"bench-{store}-{n}", ingestor).start() for n in range(workers)]
    try:
        seconds = until_acked(mqtt, store, batches, final_acks(store, devices, per_device), probed(storage, store))
        return devices * per_device / seconds
    finally:
        for worker in running:
            worker.stop()
        storage.close()


def in_processes(
    url: str,
    mqtt: MqttSection,
    store: str,
    processes: int,
    batches: list[tuple[str, bytes]],
    devices: int,
    per_device: int,
) -> float:
    """``processes`` separate ``touchpoint hq --role ingest`` processes of one worker each."""
    with tempfile.TemporaryDirectory(prefix="tp-bench-hq-") as workdir:
        config = Path(workdir) / "hq.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\n[mqtt]\nurl = "{mqtt.url}"\n'
            f'[hq]\nack_secret = "{ACK_SECRET}"\n[log]\nlevel = "warning"\n'
        )
        command = [str(Path(sys.executable).parent / "touchpoint"), "hq", "--role", "ingest", "--config", str(config)]
        children = [
            subprocess.Popen(
                command, stdout=subprocess.DEVNULL, env={**os.environ, "TOUCHPOINT_HQ_CLIENT_ID": f"bench-{n}"}
            )
            for n in range(processes)
        ]
        storage = open_storage(url)
        try:
            seconds = until_acked(mqtt, store, batches, final_acks(store, devices, per_device), probed(storage, store))
            return devices * per_device / seconds
        finally:
            for child in children:
                child.terminate()
                child.wait(30)
            storage.close()


def wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the ingest workers did not subscribe")
        time.sleep(0.02)


def parse_rate(batches: list[tuple[str, bytes]]) -> tuple[float, list[list[EventRow]]]:
    """Events/s of parsing and validation alone, and the rows for the raw baseline."""
    started = time.perf_counter()
    parsed = [parse_events(topic, body, NOW) for topic, body in batches]
    elapsed = time.perf_counter() - started
    rows = [list(batch.events) for batch in parsed if isinstance(batch, DeviceBatch)]
    return sum(map(len, rows)) / elapsed, rows


def raw_rate(url: str, rows: list[list[EventRow]]) -> float:
    """Events/s of executemany of the same rows, a transaction per batch, straight to the driver."""
    with open_storage(url) as storage:  # creates the schema
        dialect = storage.dialect
    sql = INSERT_EVENT if dialect == "sqlite" else INSERT_EVENT.replace("?", "%s")
    if dialect == "sqlite":
        conn: Any = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
    to_db: Callable[[datetime], Any] = (lambda t: t.isoformat()) if dialect == "sqlite" else (lambda t: t)
    params = [
        [
            (
                r.source,
                r.id,
                r.type,
                to_db(r.time),
                r.seq,
                r.store,
                r.device,
                r.channel,
                r.session_id,
                r.customer,
                r.anonymous_id,
                r.gtin,
                r.data,
                to_db(r.received_at),
            )
            for r in batch
        ]
        for batch in rows
    ]
    try:
        started = time.perf_counter()
        for batch in params:
            cursor = conn.cursor()
            cursor.execute("BEGIN")
            cursor.executemany(sql, batch)
            cursor.execute("COMMIT")
            cursor.close()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return sum(map(len, params)) / elapsed


SETUPS = (
    ("MQTT ingest, 1 worker", in_process, 1),
    ("MQTT ingest, 2 workers in 1 process", in_process, 2),
    ("MQTT ingest, 2 processes of 1 worker", in_processes, 2),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per run (all devices)")
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200, help="events per MQTT message")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each row; the median is shown")
    args = parser.parse_args()
    per_device = args.events // args.devices
    workdir = Path(tempfile.mkdtemp(prefix="tp-bench-hq-"))
    rows_out: list[tuple[str, str, float, float]] = []
    with Mosquitto(workdir=workdir / "mosquitto", persistence=False) as broker, PostgresCluster() as cluster:
        mqtt = MqttSection(url=broker.url)
        for backend in ("sqlite", "postgres"):

            def fresh(name: str, backend: str = backend) -> str:
                """A new, empty database of this backend."""
                return f"sqlite:///{workdir}/{name}.db" if backend == "sqlite" else cluster.create_database(name)

            base = make_batches(f"{backend}-base", args.devices, per_device, args.batch)
            parses, raws = [], []
            for n in range(args.repeat):
                parse, rows = parse_rate(base)
                parses.append(parse)
                raws.append(raw_rate(fresh(f"{backend}_raw{n}"), rows))
            raw = statistics.median(raws)
            rows_out.append((backend, "raw executemany (baseline)", raw, 1.0))
            rows_out.append(
                (backend, "parse + validate only", statistics.median(parses), statistics.median(parses) / raw)
            )
            for label, setup, count in SETUPS:
                rates = []
                for n in range(args.repeat):
                    store = f"{backend}-{setup.__name__.replace('_', '-')}-{count}-{n}"
                    batches = make_batches(store, args.devices, per_device, args.batch)
                    rates.append(
                        setup(fresh(store.replace("-", "_")), mqtt, store, count, batches, args.devices, per_device)
                    )
                rate = statistics.median(rates)
                rows_out.append((backend, label, rate, rate / raw))
    print(f"{args.events} events, {args.devices} devices, {args.batch} events per batch, median of {args.repeat} runs")
    print("| database | path | events/s | x baseline |\n|---|---|---|---|")
    for backend, path, rate, ratio in rows_out:
        print(f"| {backend} | {path} | {rate:,.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
