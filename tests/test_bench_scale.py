"""``bench/bench_scale.py`` end to end on a tiny SQLite database: every figure gets measured.

What the figures are is the benchmark's business; this only checks that the harness builds,
keeps and measures a database through real processes, so it still works after HQ changes. No
assertion on speed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.bench_scale import LINES, Settings, main, run, tables


def test_a_tiny_database_is_built_kept_and_every_figure_measured(tmp_path: Path) -> None:
    settings = Settings(warm=2, journeys=5, ingest_events=400, settle_s=0)
    (first,) = run([3000], ["sqlite"], settings, tmp_path)
    (again,) = run([3000], ["sqlite"], settings, tmp_path)
    assert not first.cached and again.cached and again.events == first.events
    assert 2500 < first.events < 3500
    for figures in (first, again):
        numbers = {f.name: getattr(figures, f.name) for f in dataclasses.fields(figures)}
        assert numbers.pop("late_link") == "yes"
        assert numbers.pop("backend") == "sqlite" and numbers.pop("first_report_waits") >= 0
        numbers.pop("cached")
        assert all(value > 0 for value in numbers.values()), numbers
    text = tables([first, again])
    assert all(f"| {line.label} |" in text for line in LINES)
    assert "growth for 1.0x the events" in text


def test_help_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    shown = capsys.readouterr().out
    assert exited.value.code == 0
    assert all(option in shown for option in ("--events", "--backend", "--quick", "--write"))
