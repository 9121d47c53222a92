"""HQ at scale (issue 12): how a web process, recompute and ingest cost grow with the stored events.

    .venv/bin/python -m bench.bench_scale                                   # 1M and 3M events, SQLite
    .venv/bin/python -m bench.bench_scale --events 1000000 10000000 --backend postgres
    .venv/bin/python -m bench.bench_scale --quick                           # 20k and 60k, a check
    .venv/bin/python -m bench.bench_scale --events 100000 300000 --write    # also append to RESULTS.md

Everything is measured from outside, as an operator would, so it means the same before and after
HQ's redesign. For each backend and size a database of that many generated events, loaded through
HQ's real ingest, comes from ``bench/scale_db.py`` (built once, kept under ``var/bench/``); each
run works on a copy of it, at least 3 minutes after it was loaded (``--settle``: HQ treats what it
received in the last minutes as news, which is the load's aftermath, not the history). On the copy:

- a fresh ``touchpoint hq --role web`` process: seconds until it listens; the first 30-day
  ``GET /v1/touchpoints`` (ending just after the newest event, cutting an hour at each end as "the
  last 30 days" does; a 202 with ``Retry-After`` is polled, at most a second apart, until the 200);
  the same report warm, p50 and p95; ``GET /v1/customers/{c}/journey?limit=100`` of the
  1,000-event customer, p99; a late identity link (``customer.logged_in`` of an anonymous visitor
  with product pages in the window, to a new customer) and whether the next report shows it
  (``web/product/page`` one customer more, as many persons); then the process's VmRSS and VmHWM;
- ``touchpoint hq recompute`` as a subprocess, timed;
- ingest: generated edge events (sessions, identifications, tags, hand-offs) from 4 devices in
  batches of 500 through a real Mosquitto into one and into two ``touchpoint hq --role ingest``
  processes of one worker, against raw ``executemany`` of such rows into the same database in the
  same run (``bench_hq``'s pieces).

The table gives each figure at each size and its growth from one size to the next.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import scale_db
from bench.__main__ import RESULTS, machine
from bench.bench_hq import in_processes, make_batches, parse_rate, raw_rate
from bench.bench_journey import HEAVY, timed
from common.config import MqttSection
from contract.envelope import make_event
from touchpoint.services import free_port

LATE_CUSTOMER = "bench-late-customer"
LATE_TOUCHPOINT = "web/product/page"  # where the late visitor's pages count
DEVICES = 4
INGEST_CHUNKS = {"raw": 10_000, "one": 10_001, "two": 10_002}  # generator chunks no database holds


@dataclass(frozen=True)
class Settings:
    """How many samples each figure takes; fewer for a quick check."""

    warm: int = 20  # warm reports
    journeys: int = 200
    ingest_events: int = 20_000
    rebuild: bool = False
    # Seconds from the end of a load to its measurement. HQ treats what it received in the last minutes
    # as news (today's web process reads the link events of the last 2 minutes again on every request),
    # so a database measured right after its load would measure the load, not the history.
    settle_s: float = 180


@dataclass(frozen=True)
class Figures:
    """Everything measured for one backend and size."""

    backend: str
    events: int
    load_s: float
    cached: bool
    startup_s: float
    first_report_s: float
    first_report_waits: int  # 202 answers before its 200
    warm_p50_s: float
    warm_p95_s: float
    journey_p99_s: float
    late_link: str  # "yes", or "no" with what the report showed
    late_report_s: float
    rss_mb: float
    hwm_mb: float
    recompute_s: float
    raw_eps: float
    one_eps: float
    two_eps: float


def percentile(samples: list[float], share: float) -> float:
    """Nearest rank: the smallest sample with at least ``share`` of them at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def memory_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of a process, in MB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss, hwm = (int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))  # kB
    return rss, hwm


def report_path(end: datetime) -> str:
    """The last 30 days before a moment just after the newest event."""
    to = end + timedelta(minutes=23, seconds=7)
    stamps = {"from": to - timedelta(days=30), "to": to}
    return "/v1/touchpoints?" + urlencode({k: v.isoformat().replace("+00:00", "Z") for k, v in stamps.items()})


def report(http: scale_db.Http, path: str) -> tuple[float, int, Any]:
    """Seconds until the report's 200 (polling each 202 after its Retry-After, at most 1 s), the 202s."""
    started, waits = time.perf_counter(), 0
    while True:
        status, headers, document = http.request("GET", path)
        if status == 200:
            return time.perf_counter() - started, waits, document
        if status != 202:
            raise RuntimeError(f"GET {path}: {status} {document}")
        waits += 1
        after = headers.get("retry-after", "1")
        time.sleep(min(float(after), 1.0) if after.replace(".", "", 1).isdigit() else 1.0)  # or an HTTP date


def late_link(before: Any, after: Any) -> str:
    """Whether the linked visitor now counts as a customer of their touchpoint, and nothing else moved there."""
    rows = [next(t for t in doc["touchpoints"] if t["touchpoint"] == LATE_TOUCHPOINT) for doc in (before, after)]
    (old, new) = ((r["customers"], r["persons"]) for r in rows)
    if new == (old[0] + 1, old[1]):
        return "yes"
    return f"no ({LATE_TOUCHPOINT}: customers {old[0]} -> {new[0]}, persons {old[1]} -> {new[1]})"


def measure_web(config: Path, port: int, built: scale_db.Built, settings: Settings, log: Path) -> dict[str, Any]:
    """A fresh web process: start-up, reports, journeys, the late link, its memory."""
    started = time.perf_counter()
    with scale_db.hq_process("web", config, log) as process:
        scale_db.wait_listening(process, port, log)
        found: dict[str, Any] = {"startup_s": time.perf_counter() - started}
        with closing(scale_db.Http(port)) as http:
            found.update(measure_api(http, built.end, settings))
        found["rss_mb"], found["hwm_mb"] = memory_mb(process.pid)
    return found


def measure_api(http: scale_db.Http, end: datetime, settings: Settings) -> dict[str, Any]:
    """Reports, journeys and the late link, over one kept-alive connection."""
    path = report_path(end)
    found: dict[str, Any] = {}
    found["first_report_s"], found["first_report_waits"], _ = report(http, path)
    warm = [report(http, path) for _ in range(settings.warm)]
    found["warm_p50_s"] = statistics.median(s for s, _, _ in warm)
    found["warm_p95_s"] = percentile([s for s, _, _ in warm], 0.95)
    journey = f"/v1/customers/{HEAVY}/journey?limit=100"
    samples = [timed(lambda: http.get(journey)) for _ in range(settings.journeys)]
    if any(len(answer["events"]) != 100 for _, answer in samples):
        raise RuntimeError(f"{journey}: not 100 events")
    found["journey_p99_s"] = percentile([s for s, _ in samples], 0.99)
    link = make_event(
        "customer.logged_in",
        {"anonymous_id": scale_db.LATE_VISITOR, "customer": LATE_CUSTOMER},
        source="/channels/web",
    )
    http.post_events("web", [link])
    found["late_report_s"], _, after = report(http, path)
    found["late_link"] = late_link(warm[-1][2], after)
    return found


def recompute(config: Path) -> float:
    """Seconds of ``touchpoint hq recompute``, which must succeed."""
    seconds, done = timed(
        lambda: subprocess.run(
            [scale_db.TOUCHPOINT, "hq", "recompute", "--config", str(config)], capture_output=True, text=True
        )
    )
    if done.returncode:
        raise RuntimeError(f"touchpoint hq recompute: exit {done.returncode}: {done.stderr[-1500:]}")
    return seconds


def fleet(number: int, per_device: int, end: datetime) -> Callable[[str, int], list[dict[str, Any]]]:
    """``make_batches``' events: consecutive runs of one generator chunk's edge events, one run per device,
    moved to that device and numbered from 1."""
    pool = iter(scale_db.edge_events(number, DEVICES * per_device, end))

    def events(source: str, count: int) -> list[dict[str, Any]]:
        made = list(islice(pool, count))
        for seq, event in enumerate(made, 1):
            event["source"], event["seq"] = source, seq
        return made

    return events


def measure_ingest(url: str, mqtt: MqttSection, events: int, end: datetime) -> dict[str, float]:
    """Events/s of raw inserts, one ingest process and two, each with events of its own, into ``url``."""
    per_device = events // DEVICES

    def batches(name: str) -> list[tuple[str, bytes]]:
        return make_batches(
            f"bench-{name}", DEVICES, per_device, scale_db.BATCH, fleet(INGEST_CHUNKS[name], per_device, end)
        )

    _, rows = parse_rate(batches("raw"))
    found = {"raw_eps": raw_rate(url, rows)}
    for name, processes in (("one", 1), ("two", 2)):
        found[f"{name}_eps"] = in_processes(url, mqtt, f"bench-{name}", processes, batches(name), DEVICES, per_device)
    return found


def measure(built: scale_db.Built, settings: Settings) -> Figures:
    """Every figure of one kept database, on a copy of it, once its load has settled."""
    wait = settings.settle_s - (datetime.now(timezone.utc) - built.loaded).total_seconds()
    if wait > 0:
        print(f"  waiting {wait:.0f} s for the load to settle (--settle)", file=sys.stderr, flush=True)
        time.sleep(wait)
    with (
        tempfile.TemporaryDirectory(prefix="tp-bench-scale-") as folder,
        scale_db.run_copy(built, Path(folder)) as url,
        scale_db.broker() as mqtt,
    ):
        port = free_port()
        config = scale_db.write_config(Path(folder) / "hq.toml", url, mqtt, port, built.catalog)
        found = measure_web(config, port, built, settings, Path(folder) / "web.log")
        found["recompute_s"] = recompute(config)
        found.update(measure_ingest(url, mqtt, settings.ingest_events, built.end))
    return Figures(built.backend, built.events, built.load_s, built.cached, **found)


def run(sizes: list[int], backends: list[str], settings: Settings, cache: Path) -> Iterator[Figures]:
    """Build (or find) every database first, so the earlier ones settle meanwhile; then measure each."""
    kept = []
    for backend in backends:
        for size in sorted(sizes):
            print(f"{backend}, {size:,} events: building or finding the database", file=sys.stderr, flush=True)
            kept.append(scale_db.ensure(cache, backend, size, settings.rebuild))
    for built in kept:
        print(f"{built.backend}, {built.events:,} events: measuring", file=sys.stderr, flush=True)
        yield measure(built, settings)


@dataclass(frozen=True)
class Line:
    """One row of the table: its label, the number compared across sizes, how a cell shows it, the goal."""

    label: str
    value: Callable[[Figures], float | str]
    show: Callable[[Figures], str]
    goal: str = "-"


def ingest_cell(eps: float, f: Figures) -> str:
    return f"{eps:,.0f} ({eps / f.raw_eps:.2f}x raw)"


LINES = (
    Line("events stored", lambda f: f.events, lambda f: f"{f.events:,}"),
    Line("web start-up until it listens (s)", lambda f: f.startup_s, lambda f: f"{f.startup_s:.1f}"),
    Line(
        "first 30-day report after the start (s)",
        lambda f: f.first_report_s,
        lambda f: f"{f.first_report_s:.2f}" + (f" ({f.first_report_waits} x 202)" if f.first_report_waits else ""),
        "< 2 s",
    ),
    Line("30-day report, warm p50 (ms)", lambda f: f.warm_p50_s, lambda f: f"{f.warm_p50_s * 1000:,.0f}"),
    Line("30-day report, warm p95 (ms)", lambda f: f.warm_p95_s, lambda f: f"{f.warm_p95_s * 1000:,.0f}", "< 500 ms"),
    Line(
        "journey of the 1,000-event customer, limit=100, p99 (ms)",
        lambda f: f.journey_p99_s,
        lambda f: f"{f.journey_p99_s * 1000:,.1f}",
        "< 50 ms",
    ),
    Line("late identity link in the next report", lambda f: f.late_link, lambda f: f.late_link, "yes"),
    Line("that next report (ms)", lambda f: f.late_report_s, lambda f: f"{f.late_report_s * 1000:,.0f}"),
    Line(
        "web RSS after reports and journeys (MB)",
        lambda f: f.rss_mb,
        lambda f: f"{f.rss_mb:,.0f}",
        "< 250 MB, within 1.2x",
    ),
    Line("web peak RSS, VmHWM (MB)", lambda f: f.hwm_mb, lambda f: f"{f.hwm_mb:,.0f}"),
    Line("`touchpoint hq recompute` (s)", lambda f: f.recompute_s, lambda f: f"{f.recompute_s:.1f}", "< 60 s at 10M"),
    Line("ingest baseline: raw executemany (ev/s)", lambda f: f.raw_eps, lambda f: f"{f.raw_eps:,.0f}"),
    Line(
        "MQTT ingest, 1 process of 1 worker (ev/s)",
        lambda f: f.one_eps,
        lambda f: ingest_cell(f.one_eps, f),
        ">= 0.8x of today's",
    ),
    Line(
        "MQTT ingest, 2 processes of 1 worker (ev/s)",
        lambda f: f.two_eps,
        lambda f: ingest_cell(f.two_eps, f),
        ">= 0.8x of today's",
    ),
    Line(
        "loading the database (s)",
        lambda f: f.load_s,
        lambda f: f"{f.load_s:,.0f}" + (" (kept from an earlier run)" if f.cached else ""),
    ),
)


def growth(small: Figures, large: Figures, line: Line) -> str:
    a, b = line.value(small), line.value(large)
    return f"{b / a:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else "-"


def table(figures: list[Figures]) -> str:
    """One backend's figures: a column per size, then the growth between neighbouring sizes."""
    pairs = list(zip(figures, figures[1:]))
    header = [
        "figure",
        *(f"{f.events:,} events" for f in figures),
        *(f"growth for {b.events / a.events:.1f}x the events" for a, b in pairs),
        "goal (issue 12)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for line in LINES:
        cells = [line.label, *(line.show(f) for f in figures), *(growth(a, b, line) for a, b in pairs), line.goal]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tables(figures: list[Figures]) -> str:
    backends = dict.fromkeys(f.backend for f in figures)
    return "\n\n".join(f"### {b}\n\n{table([f for f in figures if f.backend == b])}" for b in backends)


def section(text: str, command: str, when: datetime, cache: Path, load_before: float) -> str:
    """A dated section for RESULTS.md: the command, the machine and its load, the commit, the tables."""
    git = ["git", "-C", str(RESULTS.parent)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if subprocess.run([*git, "diff", "--quiet", "HEAD", "--", ".", f":(exclude){RESULTS.name}"]).returncode:
        commit += " with uncommitted changes"  # RESULTS.md itself, written by earlier runs, does not count
    root = RESULTS.parent.parent
    shown = cache.resolve().relative_to(root) if cache.resolve().is_relative_to(root) else cache
    return (
        f"\n## HQ at scale, {when:%Y-%m-%d %H:%M} UTC\n\n    {command}\n\n"
        f"{machine()} (`nproc` {len(os.sched_getaffinity(0))}); load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end; "
        f"commit `{commit}`; databases kept under `{shown}`. What is measured: `bench/bench_scale.py`.\n\n{text}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", help="stored events per database (default 1M 3M)")
    parser.add_argument("--backend", nargs="+", choices=("sqlite", "postgres"), default=["sqlite"])
    parser.add_argument(
        "--quick", action="store_true", help="20k and 60k events, fewer requests, no settling: a check, not a record"
    )
    parser.add_argument("--warm", type=int, help="warm reports measured (default 20)")
    parser.add_argument("--journeys", type=int, help="journey requests measured (default 200)")
    parser.add_argument("--ingest-events", type=int, help="events per ingest measurement (default 20,000)")
    parser.add_argument("--settle", dest="settle_s", type=float, help="seconds from a load to its measurement (180)")
    parser.add_argument("--cache", type=Path, default=scale_db.CACHE, help="where built databases are kept")
    parser.add_argument("--rebuild", action="store_true", help="build the databases again, not from the cache")
    parser.add_argument("--write", action="store_true", help="append a dated section to bench/RESULTS.md")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # so the children are stopped
    quick = {"warm": 5, "journeys": 50, "ingest_events": 4000, "settle_s": 0} if args.quick else {}
    settings = Settings(
        **{
            **quick,
            **{f.name: getattr(args, f.name) for f in fields(Settings) if getattr(args, f.name) is not None},
        }
    )
    sizes = args.events or ([20_000, 60_000] if args.quick else [1_000_000, 3_000_000])
    load_before = os.getloadavg()[0]
    figures = list(run(sizes, args.backend, settings, args.cache))
    text = tables(figures)
    print(text)
    if args.write:
        command = " ".join([".venv/bin/python -m bench.bench_scale", *(sys.argv[1:] if argv is None else argv)])
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(section(text, command, datetime.now(timezone.utc), args.cache, load_before))
        print(f"\nappended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
