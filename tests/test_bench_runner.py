"""``python -m bench``: headline figures picked out of each benchmark's output, the summary kept on top."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from bench.__main__ import (
    BENCHES,
    END,
    START,
    Row,
    discovered,
    framers,
    hq,
    render,
    scale,
    summary_section,
    sync,
    tables,
    write_results,
)

FRAMERS = """`100000 frames per stream`

| protocol | noise | bytes | reads | framer frames/s | framer MB/s | baseline (bytes.find) MB/s | x baseline |
|---|---|---|---|---|---|---|---|
| m100 | 0% | 2,400,000 | 100,000 | 90,568 | 9.9 | 118.3 | 12.0 |
| m100 | 1% | 2,397,830 | 99,280 | 408,308 | 9.9 | 139.5 | 14.1 |
"""

HQ = """4000 events, 4 devices, 200 events per batch, median of 1 runs
| database | path | events/s | x baseline |
|---|---|---|---|
| sqlite | raw executemany (baseline) | 39,535 | 1.00 |
| sqlite | MQTT ingest, 1 worker | 8,000 | 0.20 |
| sqlite | MQTT ingest, 2 processes of 1 worker | 12,000 | 0.30 |
| postgres | raw executemany (baseline) | 18,551 | 1.00 |
| postgres | MQTT ingest, 1 worker | 10,000 | 0.54 |
| postgres | MQTT ingest, 2 processes of 1 worker | 9,000 | 0.49 |
"""

SYNC = """raw paho QoS 1 pub->sub      600,000 events/s (baseline)
sustained agent -> HQ         90,000 events/s = 0.15 x raw (first ack to last)
catch-up 1,000,000 events      61.5 s  (16,260 events/s)
agent peak RSS                  48.3 MB
"""

SCALE = """### sqlite

| figure | 1,000,000 events | 3,000,000 events | growth for 3.0x the events | goal (issue 12) |
|---|---|---|---|---|
| events stored | 1,000,000 | 3,000,000 | 3.00x | - |
| first 30-day report after the start (s) | 1.50 | 2.40 (3 x 202) | 1.60x | < 2 s |
| 30-day report, warm p95 (ms) | 120 | 300 | 2.50x | < 500 ms |
| journey of the 1,000-event customer, limit=100, p99 (ms) | 12.0 | 14.0 | 1.17x | < 50 ms |
| late identity link in the next report | yes | yes | - | yes |
| web RSS after reports and journeys (MB) | 200 | 230 | 1.15x | < 250 MB, within 1.2x |
| `touchpoint hq recompute` (s) | 20.0 | 50.0 | 2.50x | < 60 s at 10M |
| ingest baseline: raw executemany (ev/s) | 50,000 | 40,000 | 0.80x | - |
| MQTT ingest, 1 process of 1 worker (ev/s) | 20,000 (0.40x raw) | 16,000 (0.40x raw) | 0.80x | >= 0.8x of today's |
"""


def test_tables_are_read_by_their_first_cells() -> None:
    (table,) = tables(FRAMERS)
    assert table["m100 1%"]["framer frames/s"] == "408,308"


def test_a_missed_goal_shows_as_not_met() -> None:
    (row,) = framers(FRAMERS, quick=False)
    assert row.result == "90,568/s" and row.ratio == "12.0x" and row.met is False
    assert "**no**" in render([row])


def test_hq_reports_what_a_second_ingest_process_adds() -> None:
    rows = {row.benchmark: row for row in hq(HQ, quick=False)}
    assert rows["hq: sqlite, 2 ingest processes"].ratio == "1.50"
    assert rows["hq: postgres, 2 ingest processes"].ratio == "0.90"
    assert rows["hq: MQTT ingest into postgres, 1 worker"].ratio == "0.54"


def test_sync_goals_are_judged_separately() -> None:
    rows = {row.benchmark: row for row in sync(SYNC, quick=False)}
    assert rows["sync: agent -> test acknowledger (real HQ: see Sync)"].met is True
    assert rows["sync: agent against raw QoS 1"].met is False
    assert rows["sync: catch-up after offline"].met is False  # 61.5 s for a million
    assert rows["sync: agent peak RSS"].met is True


def test_output_that_changed_shape_is_an_error_not_a_wrong_figure() -> None:
    with pytest.raises(ValueError):
        sync("raw paho QoS 1 pub->sub 1 events/s", quick=True)


def test_the_summary_goes_on_top_and_replaces_the_last_one(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Framers\n\nkept as it is\n", encoding="utf-8")
    when = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)
    for result in ("1/s", "2/s"):
        write_results(summary_section(render([Row("b", result, "-", "-")]), False, 8.5, when), results)
    text = results.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n\n" + START)
    assert text.count(START) == 1 and text.count(END) == 1
    assert "| b | 2/s |" in text and "| b | 1/s |" not in text
    assert text.endswith(f"{END}\n\n## Framers\n\nkept as it is\n")


def test_every_benchmark_module_is_run_a_new_one_with_its_defaults(tmp_path: Path) -> None:
    for module in ("bench_framers", "bench_new"):
        (tmp_path / f"{module}.py").write_text("", encoding="utf-8")
    framers_bench, new = discovered(tmp_path)
    assert framers_bench.quick and new.name == "new" and new.quick is None
    assert new.command(quick=False)[-2:] == ["-m", "bench.bench_new"]
    in_repo = {path.stem for path in Path(__file__).parent.parent.joinpath("bench").glob("bench_*.py")}
    assert {bench.module for bench in discovered()} == in_repo
    assert {bench.module for bench in BENCHES} <= in_repo


def test_scale_judges_issue_12s_goals_from_a_million_events_only() -> None:
    rows = {row.benchmark: row for row in scale(SCALE, quick=False)}
    rss = rows["scale (sqlite): web RSS"]
    assert (rss.result, rss.ratio, rss.met) == ("200 / 230 MB", "1.15x", True)
    assert rows["scale (sqlite): first report after a start"].met is False  # 2.4 s at 3M, polled through 202s
    assert rows["scale (sqlite): late link in the next report"].met is True
    assert rows["scale (sqlite): `touchpoint hq recompute`"].met is None  # its goal is at 10M
    ingest = rows["scale (sqlite): MQTT ingest, 1 worker, into 3,000,000 events"]
    assert (ingest.result, ingest.ratio) == ("16,000 ev/s", "0.40")
    small = SCALE.replace("1,000,000", "100,000").replace("3,000,000", "300,000")
    assert all(row.met is None for row in scale(small, quick=True))
