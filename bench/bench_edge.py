"""Edge benchmarks: tag-to-screen latency, outbox write rates, and the edge process's memory.

    .venv/bin/python -m bench.bench_edge                 # 10 minutes of load, for the record
    .venv/bin/python -m bench.bench_edge --minutes 1     # a quick run

1. Latency: ``touchpoint edge`` runs as its own process reading a pseudo-terminal; this process
   writes M100 frames to the pty at ``--rate`` reads/s (a tenth of them new tags, the rest repeats)
   and times each new tag from the write of its first frame to its ``tag`` event on ``/api/stream``.
2. Outbox: events/s through ``Outbox.append`` (a commit per event) and ``append_many`` (batches),
   each against raw sqlite3 inserts of the same rows into the same schema in the same run.
3. Memory: the edge process's RSS after start-up, and at the end of the load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

from drivers import encode_sgtin96
from drivers.m100 import encode_notice
from kiosk import catalog as catalogue
from sync.outbox import Outbox
from touchpoint.services import free_port, wait_for_port

NEW_TAG_EVERY = 10  # one frame in ten is a tag arriving; the rest are repeat reads


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def edge_config(workdir: Path, pty_path: str, port: int) -> Path:
    path = workdir / "edge.toml"
    path.write_text(
        f'[device]\nstore_id = "bench"\ndevice_id = "mirror-1"\nrole = "mirror"\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\n'
        f'[reader]\nprotocol = "m100"\nurl = "{pty_path}"\nzone = "cabin-1"\ndeparture_s = 1.0\n'
        f'[outbox]\npath = "{workdir / "edge.db"}"\n[log]\nlevel = "warning"\nformat = "text"\n',
        encoding="utf-8",
    )
    return path


class StreamClient(threading.Thread):
    """An SSE client noting when each tag's arrival event came in."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True, name="sse-client")
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", "/api/stream")
        self.response = self.conn.getresponse()
        self.arrived: dict[str, float] = {}

    def run(self) -> None:
        event = ""
        try:
            for raw in self.response:
                line = raw.decode()
                if line.startswith("event: "):
                    event = line[7:].strip()
                elif line.startswith("data: ") and event == "tag":
                    data = json.loads(line[6:])
                    if data["kind"] == "arrived":
                        self.arrived.setdefault(data["epc"], time.perf_counter())
        except (OSError, ValueError):
            return  # the edge stopped or the bench closed the connection

    def close(self) -> None:
        self.conn.close()


def latency_and_memory(rate: float, minutes: float) -> dict[str, float]:
    gtins = [p.gtin for p in catalogue.read_file(catalogue.sample_path(), "sample").products]
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        config = edge_config(Path(tmp), os.ttyname(slave), port)
        touchpoint = str(Path(sys.executable).parent / "touchpoint")
        edge = subprocess.Popen([touchpoint, "edge", "--config", str(config)], stdout=subprocess.DEVNULL)
        try:
            wait_for_port(port, 30)
            time.sleep(2)  # let start-up settle before the first RSS sample
            rss_start = rss_mb(edge.pid)
            client = StreamClient(port)
            client.start()
            written: dict[str, float] = {}
            present: list[str] = []
            interval = 1 / rate
            deadline = time.perf_counter() + minutes * 60
            next_at = time.perf_counter()
            serial = 0
            samples: list[float] = []
            sample_every = minutes * 60 / 10
            next_sample = time.perf_counter() + sample_every
            while time.perf_counter() < deadline:
                if time.perf_counter() >= next_sample:
                    samples.append(rss_mb(edge.pid))
                    next_sample += sample_every
                if serial % NEW_TAG_EVERY == 0 or not present:
                    epc = encode_sgtin96(gtins[serial % len(gtins)], serial, 7)
                    present = (present + [epc])[-20:]
                    frame = encode_notice(epc, -50)
                    written[epc] = time.perf_counter()
                else:
                    frame = encode_notice(present[serial % len(present)], -55)
                os.write(master, frame)
                serial += 1
                next_at += interval
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            time.sleep(1.5)  # the last arrivals' events
            rss_end = rss_mb(edge.pid)
        finally:
            edge.terminate()  # ends the stream, so the client thread finishes by itself
            edge.wait(30)
            os.close(master)
            os.close(slave)
        client.join(10)
        client.close()
    latencies = [(client.arrived[epc] - at) * 1000 for epc, at in written.items() if epc in client.arrived]
    return {
        "frames": serial,
        "arrivals": len(written),
        "received": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_mid_mb": samples[len(samples) // 2] if samples else rss_end,
        "exit_code": edge.returncode,
    }


def outbox_rates(single: int, batched: int, batch: int) -> dict[str, float]:
    data = {
        "zone": "cabin-1",
        "epc": "3034F4E4E404E24000000001",
        "gtin": "04012345050011",
        "rssi": -50,
        "session_id": "5f0c9d7e8b2a4c1d9e3f7a6b5c4d3e2f",
    }
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        box = Outbox(Path(tmp) / "edge.db", "/stores/bench/devices/mirror-1", capacity=10**7)
        start = time.perf_counter()
        for _ in range(single):
            box.append("tag.arrived", data)
        rates["append"] = single / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(batched // batch):
            box.append_many([("tag.arrived", data)] * batch)
        rates["append_many"] = batched / (time.perf_counter() - start)
        rows = [
            (seq, event_id, created, bytes(body))
            for seq, event_id, created, body in box.conn.execute(
                "SELECT seq, id, created, body FROM events ORDER BY seq LIMIT ?", (max(single, batched),)
            )
        ]
        box.close()
        raw = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, created FLOAT, body BLOB)")
        start = time.perf_counter()
        for row in rows[:single]:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO events VALUES (?, ?, ?, ?)", row)
            raw.execute("COMMIT")
        rates["raw_single"] = single / (time.perf_counter() - start)
        raw.execute("DELETE FROM events")
        start = time.perf_counter()
        for offset in range(0, batched, batch):
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows[offset : offset + batch])
            raw.execute("COMMIT")
        rates["raw_batched"] = batched / (time.perf_counter() - start)
        raw.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration (default 10)")
    parser.add_argument("--rate", type=float, default=500.0, help="frames written per second (default 500)")
    parser.add_argument("--single", type=int, default=5000, help="events appended one commit each")
    parser.add_argument("--batched", type=int, default=50000, help="events appended in batches")
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    args = parser.parse_args()

    rates = outbox_rates(args.single, args.batched, args.batch)
    print(
        f"outbox, one commit per event: {rates['append']:,.0f} events/s; raw sqlite3 "
        f"{rates['raw_single']:,.0f}/s; ratio {rates['append'] / rates['raw_single']:.2f}"
    )
    print(
        f"outbox, append_many x{args.batch}: {rates['append_many']:,.0f} events/s; raw sqlite3 "
        f"executemany {rates['raw_batched']:,.0f}/s; ratio {rates['append_many'] / rates['raw_batched']:.2f}"
    )
    load = latency_and_memory(args.rate, args.minutes)
    print(
        f"tag to SSE at {args.rate:.0f} reads/s for {args.minutes:g} min: {load['frames']:,} frames, "
        f"{load['received']:,}/{load['arrivals']:,} arrivals received; p50 {load['p50_ms']:.1f} ms, "
        f"p99 {load['p99_ms']:.1f} ms, max {load['max_ms']:.1f} ms"
    )
    print(
        f"edge RSS: {load['rss_start_mb']:.1f} MB after start-up, {load['rss_mid_mb']:.1f} MB half-way, "
        f"{load['rss_end_mb']:.1f} MB after the load; "
        f"exit code on SIGTERM {load['exit_code']}"
    )


if __name__ == "__main__":
    main()
