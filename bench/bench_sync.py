"""How fast does the sync agent empty the outbox into HQ, against what the broker can carry?

Everything runs on loopback with a private Mosquitto. Three measurements, in one run:

* raw: the same batch payloads (bytes taken from an outbox) published at QoS 1 through the paho
  adapter to a subscriber that only counts them: the ceiling for this machine and broker;
* sustained: the `touchpoint sync` process draining a pre-filled outbox into HQ (the test
  acknowledger, or ``--hq ingestor``: the real HQ ingest worker on SQLite), events/s measured
  from the first to the last acknowledgement;
* catch-up: N events buffered while offline, drained from the agent's start to an empty outbox.

The agent's peak RSS (VmHWM) is read from /proc before it is stopped.

    python -m bench.bench_sync                       # 200,000 stream, 1,000,000 catch-up
    python -m bench.bench_sync --stream 50000 --catchup 100000 --hq ingestor
    python -m bench.bench_sync --hq processes --processes 2     # HQ as two ingest processes
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config import MqttSection
from common.mqtt import Message, MqttClient
from sync.outbox import Outbox
from tests.acknowledger import ACK_SECRET, ack_key
from touchpoint.services import Mosquitto

STORE = "bench-store"
EVENT = (
    "tag.arrived",
    {
        "session_id": "0190f5c2-7c1e-7d3a-9a51-3f2b1c0d4e5f",
        "zone": "cabin-3",
        "epc": "3074257BF7194E4000001A85",
        "gtin": "80614141123458",
        "rssi": -52,
    },
)


@dataclass(frozen=True)
class Drain:
    events: int
    seconds: float  # from the agent's start to an empty outbox
    steady_rate: float  # events/s between the first and the last acknowledgement
    peak_rss_mb: float


def source(device: str) -> str:
    return f"/stores/{STORE}/devices/{device}"


def fill(path: Path, device: str, count: int) -> None:
    box = Outbox(path, source(device), capacity=max(1000, count))
    try:
        for start in range(0, count, 10_000):
            box.append_many([EVENT] * min(10_000, count - start))
    finally:
        box.close()


def payloads(path: Path, device: str, count: int, batch_events: int) -> list[bytes]:
    """The agent's batches for ``count`` events, byte for byte."""
    box = Outbox(path, source(device))
    try:
        result, after = [], 0
        while after < count:
            batch = box.pending(after, batch_events, 256 * 1024 - 2)
            result.append(b"[" + b",".join(e.body for e in batch) + b"]")
            after = batch[-1].seq
        return result
    finally:
        box.close()


def raw_rate(broker: Mosquitto, batches: list[bytes], per_batch: int) -> float:
    """Events/s that paho and Mosquitto carry at QoS 1 from one publisher to one subscriber."""
    settings = MqttSection(url=broker.url)
    done = threading.Event()
    received = [0]

    def count(message: Message) -> None:
        received[0] += 1
        if received[0] == len(batches):
            done.set()

    subscriber = MqttClient(settings, "raw-sub", on_message=count)
    subscriber.subscribe([("raw/events", 1)])
    with subscriber, MqttClient(settings, "raw-pub") as publisher:
        subscriber.wait_connected(10)
        publisher.wait_connected(10)
        started = time.perf_counter()
        for payload in batches:
            publisher.publish("raw/events", payload)
        if not done.wait(300):
            raise RuntimeError(f"raw subscriber got {received[0]} of {len(batches)} batches")
        elapsed = time.perf_counter() - started
    return len(batches) * per_batch / elapsed


class Hq:
    """The HQ side: the test acknowledger, the real ingest worker in this process on a SQLite
    file, or ``processes`` separate ``touchpoint hq --role ingest`` processes sharing that file."""

    def __init__(self, kind: str, broker: Mosquitto, workdir: Path, processes: int = 2) -> None:
        self.kind = kind
        self.children: list[subprocess.Popen[bytes]] = []
        url = f"sqlite:///{workdir / 'hq.db'}"
        if kind == "stub":
            from tests.acknowledger import Acknowledger

            self.stub = Acknowledger(broker.url, client_id="bench-hq", record=False).start()
        elif kind == "ingestor":
            from hq.mqtt.worker import Ingestor, IngestWorker
            from hq.prometheus import HqMetrics
            from hq.storage import open_storage

            self.storage = open_storage(url)
            self.worker = IngestWorker(
                MqttSection(url=broker.url), "bench-hq", Ingestor(self.storage, HqMetrics(), ACK_SECRET)
            ).start()
        else:
            self._start_processes(url, broker, workdir / "hq.toml", processes)

    def _start_processes(self, url: str, broker: Mosquitto, config: Path, count: int) -> None:
        """Start the ingest processes and wait until they hear a probe device's status."""
        from bench.bench_hq import wait
        from hq.storage import open_storage

        config.write_text(
            f'[database]\nurl = "{url}"\n[mqtt]\nurl = "{broker.url}"\n'
            f'[hq]\nack_secret = "{ACK_SECRET}"\n[log]\nlevel = "warning"\n'
        )
        command = [str(Path(sys.executable).parent / "touchpoint"), "hq", "--role", "ingest", "--config", str(config)]
        self.children = [
            subprocess.Popen(command, env={**os.environ, "TOUCHPOINT_HQ_CLIENT_ID": f"bench-{n}"}) for n in range(count)
        ]
        with MqttClient(MqttSection(url=broker.url), "bench-probe") as probe, open_storage(url) as storage:
            probe.wait_connected(10)
            probe.publish(f"touchpoint/v1/{STORE}/probe/status", b'{"state": "online"}', retain=True).wait(10)
            wait(lambda: bool(storage.devices()))

    def stop(self) -> None:
        if self.kind == "stub":
            self.stub.stop()
        elif self.kind == "ingestor":
            self.worker.stop()
            self.storage.close()
        for child in self.children:
            child.terminate()
            child.wait(30)


def drain(broker: Mosquitto, db: Path, device: str, count: int) -> Drain:
    """Start `touchpoint sync` on a pre-filled outbox and time it until the outbox is empty.

    Each phase is its own device: HQ's retained ack for one device's seqs must not meet
    another outbox (the agent rightly ignores an ack beyond its last seq).
    """
    config = db.with_suffix(".toml")
    config.write_text(
        f'[device]\nstore_id = "{STORE}"\ndevice_id = "{device}"\n'
        f'[outbox]\npath = "{db}"\ncapacity = {max(1000, count)}\n[mqtt]\nurl = "{broker.url}"\n'
        f'ack_key = "{ack_key(STORE, device)}"\n[log]\nlevel = "warning"\n'
    )
    box = Outbox(db, source(device))
    agent = subprocess.Popen([str(Path(sys.executable).parent / "touchpoint"), "sync", "--config", str(config)])
    started = time.perf_counter()
    first: tuple[float, int] | None = None
    try:
        while (stats := box.stats()).depth:
            if first is None and stats.acked_upto:
                first = (time.perf_counter(), stats.acked_upto)
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited with {agent.returncode}")
            time.sleep(0.05)
        ended = time.perf_counter()
        peak = _peak_rss_mb(agent.pid)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        box.close()
    first_at, first_acked = first or (started, 0)
    return Drain(count, ended - started, (count - first_acked) / max(ended - first_at, 1e-9), peak)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(stream: int, catchup: int, hq_kind: str, processes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir=workdir / "broker", persistence=False) as broker:
            fill(workdir / "stream.db", "kiosk-1", stream)
            batches = payloads(workdir / "stream.db", "kiosk-1", stream, 500)
            raw = raw_rate(broker, batches, 500)
            del batches
            hq = Hq(hq_kind, broker, workdir, processes)
            try:
                sustained = drain(broker, workdir / "stream.db", "kiosk-1", stream)
                filled = time.perf_counter()
                fill(workdir / "catchup.db", "kiosk-2", catchup)
                fill_rate = catchup / (time.perf_counter() - filled)
                caught_up = drain(broker, workdir / "catchup.db", "kiosk-2", catchup)
            finally:
                hq.stop()
    return {"raw": raw, "sustained": sustained, "catchup": caught_up, "fill_rate": fill_rate}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", type=int, default=200_000, help="events in the sustained drain")
    parser.add_argument("--catchup", type=int, default=1_000_000, help="events buffered offline")
    parser.add_argument(
        "--hq",
        choices=["stub", "ingestor", "processes"],
        default="stub",
        help="stub: the test acknowledger; ingestor: hq.mqtt.worker on SQLite in this process;"
        " processes: --processes `touchpoint hq --role ingest` on SQLite",
    )
    parser.add_argument("--processes", type=int, default=2, help="ingest processes for --hq processes")
    args = parser.parse_args(argv)
    result = run(args.stream, args.catchup, args.hq, args.processes)
    raw, sustained, catchup = result["raw"], result["sustained"], result["catchup"]
    hq = f"{args.processes} processes" if args.hq == "processes" else args.hq
    print(f"hq: {hq}; batches of up to 500 events as the outbox stores them, QoS 1, loopback")
    print(f"raw paho QoS 1 pub->sub   {raw:>10,.0f} events/s (baseline)")
    print(
        f"sustained agent -> HQ     {sustained.steady_rate:>10,.0f} events/s = {sustained.steady_rate / raw:.2f} x raw "
        f"({sustained.events:,} events, {sustained.seconds:.1f} s with start-up)"
    )
    print(
        f"catch-up {catchup.events:>9,} events {catchup.seconds:>8.1f} s"
        f"  ({catchup.events / catchup.seconds:,.0f} events/s)"
    )
    print(f"agent peak RSS            {max(sustained.peak_rss_mb, catchup.peak_rss_mb):>10.1f} MB")
    print(f"(outbox filled at {result['fill_rate']:,.0f} events/s, not part of any figure)")


if __name__ == "__main__":
    main()
