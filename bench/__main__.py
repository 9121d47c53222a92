"""Every benchmark of the project in one run, with a summary table of result, baseline and goal.

    .venv/bin/python -m bench                    # the full run, under ten minutes on the dev machine
    .venv/bin/python -m bench --quick            # smaller inputs, about two minutes
    .venv/bin/python -m bench --only hq --only sync
    .venv/bin/python -m bench --write-results    # also put the summary at the top of bench/RESULTS.md

Each benchmark runs as its own process with the command printed above its output, so any row can
be reproduced alone. The full run keeps the goals' sizes (a million-event catch-up, 100,000 m100
frames) but shortens the long ones (edge load 1 minute, analytics ~320,000 events, HQ at scale
100,000 and 300,000 stored events, whose databases are built once and kept under var/bench) to stay
under ten minutes on the shared 2-core machine; each module's own defaults, run alone, are the record
runs in the sections of RESULTS.md. Their measurements are theirs; this module only picks the headline figures
out of what they print and compares them with the goals the project set.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- summary: python -m bench --write-results -->", "<!-- end of summary -->"


@dataclass(frozen=True)
class Row:
    """One headline figure; ``met`` is None where the project set no goal."""

    benchmark: str
    result: str
    baseline: str
    ratio: str
    goal: str = "-"
    met: bool | None = None
    command: str = ""  # what reproduces it, filled in by run()


@dataclass(frozen=True)
class Bench:
    name: str
    module: str
    full: tuple[str, ...]
    quick: tuple[str, ...] | None  # None: no small inputs known, so --quick leaves it out
    summarise: Callable[[str, bool], list[Row]]  # (output, quick) -> rows

    def command(self, quick: bool) -> list[str]:
        return [sys.executable, "-m", f"bench.{self.module}", *((self.quick or ()) if quick else self.full)]


def number(text: str) -> float:
    """``"8,622"`` -> 8622.0; the first number in ``text``."""
    found = re.search(r"-?[\d,]*\.?\d+", text)
    if found is None:
        raise ValueError(f"no number in {text!r}")
    return float(found.group().replace(",", ""))


def tables(output: str) -> list[dict[str, dict[str, str]]]:
    """Every Markdown table in ``output``, as first cell -> {header: cell} (later rows win)."""
    found: list[dict[str, dict[str, str]]] = []
    header: list[str] | None = None
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if cells is None:
            header = None
        elif header is None:
            header = cells
            found.append({})
        elif not set("".join(cells)) <= set("-: "):
            found[-1][cells[0] + (" " + cells[1] if header[1] in ("path", "noise") else "")] = dict(zip(header, cells))
    return found


def line(output: str, pattern: str) -> re.Match[str]:
    found = re.search(pattern, output)
    if found is None:
        raise ValueError(f"no line matching {pattern!r}")
    return found


def framers(output: str, quick: bool) -> list[Row]:
    row = tables(output)[0]["m100 0%"]
    rate = number(row["framer frames/s"])
    return [
        Row(
            "framers: m100 frames/s, one core",
            f"{rate:,.0f}/s",
            f"{row['baseline (bytes.find) MB/s']} MB/s bytes.find",
            f"{row['x baseline']}x",
            ">= 100,000/s",
            rate >= 100_000,
        )
    ]


def qr(output: str, quick: bool) -> list[Row]:
    rows = tables(output)[0]
    zxing = next(v for k, v in rows.items() if k.startswith("zxing"))
    base = rows["greyscale only (baseline)"]
    ok = zxing["all"] == "100%" and zxing["false"] == "0"
    return [
        Row(
            "qr: zxing-cpp, codes found, ms/frame",
            f"{zxing['all']}, {zxing['ms/frame']} ms",
            f"{base['ms/frame']} ms greyscale",
            f"{zxing['x baseline']}x",
            "100% found, 0 false",
            ok,
        )
    ]


def edge(output: str, quick: bool) -> list[Row]:
    latency = line(output, r"p50 ([\d.]+) ms, p99 ([\d.]+) ms")
    rss = line(output, r"edge RSS: ([\d.]+) MB after start-up, ([\d.]+) MB half-way, ([\d.]+) MB after")
    single = line(output, r"one commit per event: ([\d,]+) events/s; raw sqlite3 ([\d,]+)/s; ratio ([\d.]+)")
    batched = line(output, r"append_many x\d+: ([\d,]+) events/s; raw sqlite3 executemany ([\d,]+)/s; ratio ([\d.]+)")
    return [
        Row(
            "edge: tag frame to SSE event, p99",
            f"{latency[2]} ms (p50 {latency[1]})",
            "-",
            "-",
            "p99 < 50 ms",
            float(latency[2]) < 50,
        ),
        Row("edge: RSS start / end of load", f"{rss[1]} / {rss[3]} MB", "-", "-", "< 120 MB", float(rss[3]) < 120),
        Row("edge: Outbox.append, commit each", f"{single[1]}/s", f"{single[2]}/s raw sqlite3", single[3]),
        Row("edge: Outbox.append_many", f"{batched[1]}/s", f"{batched[2]}/s raw executemany", batched[3]),
    ]


def sync(output: str, quick: bool) -> list[Row]:
    raw = number(line(output, r"raw paho QoS 1 pub->sub\s+([\d,]+)")[1])
    rate = number(line(output, r"sustained agent -> HQ\s+([\d,]+)")[1])
    catchup = line(output, r"catch-up\s+([\d,]+) events\s+([\d.]+) s")
    rss = number(line(output, r"agent peak RSS\s+([\d.]+)")[1])
    events = number(catchup[1])
    rows = [
        Row(
            "sync: agent -> test acknowledger (real HQ: see Sync)",
            f"{rate:,.0f} ev/s",
            "-",
            "-",
            ">= 20,000 ev/s",
            rate >= 20_000,
        ),
        Row(
            "sync: agent against raw QoS 1",
            f"{rate:,.0f} ev/s",
            f"{raw:,.0f} ev/s raw paho",
            f"{rate / raw:.2f}",
            ">= 0.5",
            rate / raw >= 0.5,
        ),
        Row("sync: agent peak RSS", f"{rss:.1f} MB", "-", "-", "< 60 MB", rss < 60),
    ]
    goal_met = float(catchup[2]) < 60 if events >= 1_000_000 else None
    rows.append(
        Row(
            "sync: catch-up after offline",
            f"{events:,.0f} in {catchup[2]} s",
            "-",
            "-",
            "1,000,000 in < 60 s" if goal_met is not None else "- (quick: fewer events)",
            goal_met,
        )
    )
    return rows


def hq(output: str, quick: bool) -> list[Row]:
    rows = tables(output)[0]
    found = []
    for db in ("sqlite", "postgres"):
        raw = rows[f"{db} raw executemany (baseline)"]
        one = rows[f"{db} MQTT ingest, 1 worker"]
        two = rows[f"{db} MQTT ingest, 2 processes of 1 worker"]
        found.append(
            Row(
                f"hq: MQTT ingest into {db}, 1 worker",
                f"{one['events/s']} ev/s",
                f"{raw['events/s']} ev/s raw executemany",
                one["x baseline"],
            )
        )
        scale = number(two["events/s"]) / number(one["events/s"])
        found.append(
            Row(
                f"hq: {db}, 2 ingest processes",
                f"{two['events/s']} ev/s",
                f"{one['events/s']} ev/s 1 worker",
                f"{scale:.2f}",
            )
        )
    return found


def analytics(output: str, quick: bool) -> list[Row]:
    rows = tables(output)[0]
    base = rows["baseline: parse time and name"]
    found = []
    for stage, label in (
        ("stitch (batch, time-sorted links)", "stitch, batch"),
        ("metrics: compute (30-day window)", "touchpoint metrics"),
    ):
        row = rows[stage]
        found.append(
            Row(
                f"analytics: {label}",
                f"{row['us/event']} us/event",
                f"{base['us/event']} us/event parse",
                f"{row['x baseline']}x",
            )
        )
    return found


def journey(output: str, quick: bool) -> list[Row]:
    rows = tables(output)[0]  # SQLite: the first backend measured
    base = rows["baseline: SELECT by customer token (p99)"]
    row = rows["journey API, 1,000-event customer, limit=100 (p99)"]
    scan = rows["baseline: SELECT the window's events (no decoding)"]
    report = rows["touchpoint API, warm (median)"]
    return [
        Row(
            "journey API (SQLite), limit=100, p99",
            f"{row['ms']} ms",
            f"{base['ms']} ms SELECT",
            f"{row['x its baseline']}x",
        ),
        Row(
            "touchpoint API (SQLite), 30 days, warm, median",
            f"{report['ms']} ms",
            f"{scan['ms']} ms window SELECT",
            f"{report['x its baseline']}x",
        ),
    ]


def screens(output: str, quick: bool) -> list[Row]:
    rows = tables(output)[0]
    card, base = rows["card in the DOM"], rows["tag event in the page (baseline)"]
    ratio = line(output, r"card / baseline \(medians\): ([\d.]+)x")[1]
    return [
        Row(
            "screens: tag to card on the mirror, median",
            f"{card['median']} ms (p95 {card['p95']})",
            f"{base['median']} ms SSE event",
            f"{ratio}x",
        )
    ]


def scale(output: str, quick: bool) -> list[Row]:
    """Issue 12's figures for the first backend measured. Its goals hold from 1M stored events
    (recompute's at 10M), so each is judged on the sizes that large only, and not at all below."""
    backend = line(output, r"### (\w+)")[1]
    rows = tables(output)[0]
    header = list(rows["events stored"])
    grown = [h for h in header if h.startswith("growth")]
    sizes = [h for h in header if h.endswith(" events") and h not in grown]
    stored = [number(rows["events stored"][s]) for s in sizes]

    def row(label: str, name: str, goal: str, met: Callable[[list[float], float], bool], at: float = 1e6) -> Row:
        cells = [rows[label][s] for s in sizes]
        growth = rows[label][grown[-1]] if grown else "-"
        judged = [number(c) if c[0].isdigit() else c == "yes" for c, n in zip(cells, stored) if n >= at]
        verdict = met(judged, number(growth) if growth != "-" else 1.0) if judged else None
        unit = re.search(r"\(([^)]*)\)$", label)
        result = " / ".join(c.split(" (")[0] for c in cells) + (f" {unit[1]}" if unit else "")
        shown = goal if judged else f"{goal} (not judged below {at / 1e6:.0f}M events)"
        return Row(f"scale ({backend}): {name}", result, "-", growth, shown, verdict)

    def below(most: float) -> Callable[[list[float], float], bool]:
        return lambda values, growth: all(v < most for v in values)

    one = rows["MQTT ingest, 1 process of 1 worker (ev/s)"][sizes[-1]]
    return [
        row(
            "web RSS after reports and journeys (MB)",
            "web RSS",
            "< 250 MB, within 1.2x",
            lambda values, growth: all(v < 250 for v in values) and growth <= 1.2,
        ),
        row("30-day report, warm p95 (ms)", "30-day report, warm p95", "< 500 ms", below(500)),
        row("first 30-day report after the start (s)", "first report after a start", "< 2 s", below(2)),
        row("journey of the 1,000-event customer, limit=100, p99 (ms)", "journey p99", "< 50 ms", below(50)),
        row("late identity link in the next report", "late link in the next report", "yes", lambda v, g: all(v)),
        row("`touchpoint hq recompute` (s)", "`touchpoint hq recompute`", "< 60 s at 10M", below(60), at=1e7),
        Row(
            f"scale ({backend}): MQTT ingest, 1 worker, into {stored[-1]:,.0f} events",
            one.split(" (")[0] + " ev/s",
            rows["ingest baseline: raw executemany (ev/s)"][sizes[-1]] + " ev/s raw executemany",
            line(one, r"\(([\d.]+)x raw\)")[1],
        ),
    ]


def unsummarised(output: str, quick: bool) -> list[Row]:
    """A benchmark this runner has no headline for yet: its own output above is the result."""
    return [Row("", "see its output above", "-", "-")]


BENCHES = (
    Bench("framers", "bench_framers", ("--repeat", "5"), ("--frames", "20000", "--repeat", "2"), framers),
    Bench("qr", "bench_qr", ("--per-variant", "20"), ("--per-variant", "5"), qr),
    Bench(
        "edge", "bench_edge", ("--minutes", "1"), ("--minutes", "0.25", "--single", "1000", "--batched", "10000"), edge
    ),
    Bench(
        "sync",
        "bench_sync",
        ("--stream", "100000", "--catchup", "1000000"),
        ("--stream", "20000", "--catchup", "50000"),
        sync,
    ),
    Bench("hq", "bench_hq", ("--events", "10000", "--repeat", "1"), ("--events", "4000", "--repeat", "1"), hq),
    Bench("analytics", "bench_analytics", ("--customers", "10000"), ("--customers", "1000"), analytics),
    Bench(
        "journey",
        "bench_journey",
        ("--customers", "3000", "--no-postgres"),
        ("--customers", "1000", "--requests", "50", "--no-postgres"),
        journey,
    ),
    Bench("screens", "bench_screens", ("--tags", "40"), ("--tags", "10"), screens),
    Bench("scale", "bench_scale", ("--events", "100000", "300000"), ("--quick",), scale),
)


def discovered(folder: Path = Path(__file__).parent) -> list[Bench]:
    """Every ``bench_*.py`` in the folder, with the options above or, if new, its own defaults."""
    known = {bench.module: bench for bench in BENCHES}
    modules = sorted(path.stem for path in folder.glob("bench_*.py"))
    return [known.get(m) or Bench(m.removeprefix("bench_"), m, (), None, unsummarised) for m in modules]


def run(bench: Bench, quick: bool) -> tuple[list[Row], float]:
    """Run one benchmark, echo its output, return its rows and how long it took."""
    command = bench.command(quick)
    shown = " ".join([".venv/bin/python", *command[1:]])
    print(f"\n$ {shown}", flush=True)
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    seconds = time.monotonic() - started
    print(result.stdout, end="", flush=True)
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        return [Row(bench.name, f"failed (exit {result.returncode})", "-", "-", "runs", False, shown)], seconds
    try:
        rows = bench.summarise(result.stdout, quick)
        return [replace(row, benchmark=row.benchmark or bench.name, command=shown) for row in rows], seconds
    except (KeyError, ValueError, IndexError, StopIteration) as error:
        return [Row(bench.name, f"output not understood ({error})", "-", "-", "runs", False, shown)], seconds


def render(rows: list[Row]) -> str:
    lines = [
        "| benchmark | result | baseline (same run) | ratio | goal | met? | command |",
        "|---|---|---|---|---|---|---|",
    ]
    marks = {True: "yes", False: "**no**", None: "-"}
    lines += [
        f"| {r.benchmark} | {r.result} | {r.baseline} | {r.ratio} | {r.goal} | {marks[r.met]} | "
        f"{'`' + r.command + '`' if r.command else '-'} |"
        for r in rows
    ]
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    try:
        model = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def summary_section(table: str, quick: bool, minutes: float, when: datetime) -> str:
    mode = "--quick" if quick else "full"
    return (
        f"{START}\n## Summary\n\nGenerated by `.venv/bin/python -m bench --write-results` ({mode} run, "
        f"{minutes:.1f} min, {when:%Y-%m-%d %H:%M} UTC; {machine()}; load average "
        f"{os.getloadavg()[0]:.1f} at the end). "
        f"The command column reproduces a row alone; what each benchmark measures, and its record runs "
        f"with larger inputs, are in its section below.\n\n{table}\n{END}\n"
    )


def write_results(section: str, path: Path = RESULTS) -> None:
    """Put ``section`` at the top of RESULTS.md (replacing an earlier summary); the rest stays as it is."""
    text = path.read_text(encoding="utf-8")
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + section + "\n" + rest.split(END, 1)[1].lstrip("\n")
    else:
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{section}\n{rest.lstrip()}"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs: a check that every benchmark runs")
    benches = discovered()
    parser.add_argument("--only", action="append", choices=[b.name for b in benches], help="run only these")
    parser.add_argument("--write-results", action="store_true", help="put the summary at the top of bench/RESULTS.md")
    args = parser.parse_args(argv)
    chosen = [b for b in benches if not args.only or b.name in args.only]
    rows: list[Row] = []
    started = time.monotonic()
    for bench in chosen:
        if args.quick and bench.quick is None:
            rows.append(Row(bench.name, "left out of --quick", "-", "-"))
            continue
        found, seconds = run(bench, args.quick)
        print(f"[{bench.name}: {seconds:.0f} s]", flush=True)
        rows += found
    minutes = (time.monotonic() - started) / 60
    table = render(rows)
    print(f"\nSummary ({'quick' if args.quick else 'full'} run, {minutes:.1f} min):\n\n{table}")
    if args.write_results:
        write_results(summary_section(table, args.quick, minutes, datetime.now(timezone.utc)))
        print(f"\nwritten to {RESULTS}")
    failed = any(r.ratio == "-" and r.result.startswith(("failed", "output not")) for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
