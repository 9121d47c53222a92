"""deploy/prometheus/alerts.yml: valid rules, real metric names, and alerts that fire when they should.

promtool (Prometheus's own checker) validates the rules and runs them over synthetic series; the
metric names are checked against what the real edge and HQ apps serve at ``/metrics``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from common import config as configuration
from hq.storage import open_storage
from hq.web.app import create_app as create_hq_app
from kiosk import create_app as create_edge_app
from kiosk import shutdown
from tests.kiosk_support import edge_config

ALERTS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "alerts.yml"
BUILT_IN = {"up"}  # written by Prometheus itself for every scrape target
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
EDGE = {"instance": "mirror-03:8080", "job": "touchpoint-edge"}
HQ = {"instance": "hq:8090", "job": "touchpoint-hq"}


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not functions, keywords or labels)."""
    expr = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = re.findall(r"\b([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)
    return {name for name in names if name not in KEYWORDS}


def exposed(text: str) -> set[str]:
    """Every series name in a Prometheus text exposition, including labelled ones with no samples yet."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


SCRAPE_TOKEN = "scrape-token-0123456789"  # what Prometheus sends as its scrape job's authorization


@pytest.fixture
def served(tmp_path: Path) -> set[str]:
    """What the real edge (with a reader) and HQ apps serve at /metrics."""
    edge = create_edge_app(
        edge_config(tmp_path, reader={"protocol": "m100", "url": "loop://"}, web={"metrics_token": SCRAPE_TOKEN}),
        start_readers=False,
    )
    scrape = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}
    try:
        names = exposed(edge.test_client().get("/metrics", headers=scrape).get_data(as_text=True))
    finally:
        shutdown(edge)
    url = f"sqlite:///{tmp_path}/hq.db"
    storage = open_storage(url)
    try:
        document = {"database": {"url": url}, "web": {"metrics_token": SCRAPE_TOKEN}}
        hq = create_hq_app(
            configuration.from_dict(configuration.HqConfig, document), storage, checks={"mqtt": lambda: True}
        )
        names |= exposed(hq.test_client().get("/metrics", headers=scrape).get_data(as_text=True))
    finally:
        storage.close()
    return names


def test_the_rules_parse_and_say_what_to_do() -> None:
    found = rules()
    assert len(found) == len({rule["alert"] for rule in found}) >= 10
    for rule in found:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 40, rule["alert"]


def test_every_metric_an_alert_uses_is_served_by_the_code(served: set[str]) -> None:
    assert "touchpoint_edge_outbox_depth" in served and "touchpoint_hq_dead_letters_total" in served
    for rule in rules():
        unknown = metric_names(rule["expr"]) - served - BUILT_IN
        assert not unknown, f"{rule['alert']} uses {sorted(unknown)}, which no /metrics serves"


def test_metric_names_finds_series_not_functions_or_labels() -> None:
    expr = 'sum by (reason) (increase(a_total{job="x"}[5m])) > 0 and on() b == 0 unless c offset 5m'
    assert metric_names(expr) == {"a_total", "b", "c"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)


def test_promtool_accepts_the_rules_and_rejects_a_broken_copy(tmp_path: Path) -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "alerts.yml"
    broken.write_text(ALERTS.read_text().replace('expr: up{job="touchpoint-hq"} == 0', "expr: up{job= == 0"))
    assert promtool("check", "rules", str(broken)).returncode != 0


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


# (alert, input series at 1-minute steps, quiet until, firing at, its labels, its summary)
CASES: list[tuple[str, list[dict[str, str]], str, str, dict[str, str], str]] = [
    (
        "TouchpointEdgeDown",
        [series("up", EDGE, "1 1 0x20")],
        "5m",
        "10m",
        EDGE,
        "Edge device mirror-03:8080 does not answer /metrics",
    ),
    (
        "TouchpointReaderDisconnected",
        [
            series("touchpoint_edge_reader_state", {**EDGE, "state": "disconnected"}, "0 0 1x10"),
            series("touchpoint_edge_reader_state", {**EDGE, "state": "connected"}, "1 1 0x10"),
        ],
        "3m",
        "8m",
        {"instance": EDGE["instance"]},
        "RFID reader of mirror-03:8080 is disconnected",
    ),
    (
        "TouchpointReaderNoisy",
        [
            series("touchpoint_edge_reads_total", EDGE, "0+100x60"),
            series("touchpoint_edge_bad_frames_total", EDGE, "0+10x60"),
        ],
        "10m",
        "30m",
        EDGE,
        "More than 5% bad frames from the reader of mirror-03:8080",
    ),
    (
        "TouchpointBacklogGrowing",
        [series("touchpoint_edge_outbox_depth", EDGE, "0+100x90")],
        "30m",
        "60m",
        EDGE,
        "mirror-03:8080 has 6000 events waiting for HQ, and more every minute",
    ),
    (
        "TouchpointBacklogOld",
        [series("touchpoint_edge_outbox_oldest_age_seconds", EDGE, "0+60x60")],
        "35m",
        "45m",
        EDGE,
        "Oldest unacknowledged event on mirror-03:8080 is 45m 0s old",
    ),
    (
        "TouchpointEventsDropped",
        [series("touchpoint_edge_outbox_dropped_total", EDGE, "0 0 0 5x30")],
        "2m",
        "5m",
        EDGE,
        "mirror-03:8080 is refusing events: outbox or disk full",
    ),
    ("TouchpointHqDown", [series("up", HQ, "1 0x10")], "1m", "5m", HQ, "HQ process hq:8090 does not answer /metrics"),
    (
        "TouchpointDeviceOffline",
        [series("touchpoint_hq_devices", HQ, "5x30"), series("touchpoint_hq_devices_online", HQ, "5 5 4x30")],
        "10m",
        "20m",
        {},
        "1 device(s) have been offline for 15 minutes",
    ),
    (
        "TouchpointGapsReported",
        [series("touchpoint_hq_devices_with_gaps", HQ, "0 0 2x40")],
        "20m",
        "35m",
        {},
        "2 device(s) have missing event seqs at HQ for 30 minutes",
    ),
    (
        "TouchpointDeadLettersRising",
        [series("touchpoint_hq_dead_letters_total", {**HQ, "reason": "source-mismatch"}, "0 0 0 3x30")],
        "2m",
        "5m",
        {"reason": "source-mismatch"},
        "HQ is dead-lettering payloads (source-mismatch)",
    ),
    (
        "TouchpointHqStorageErrors",
        [series("touchpoint_hq_storage_errors_total", HQ, "0 0 0 1x30")],
        "2m",
        "5m",
        {},
        "HQ is failing to store event batches",
    ),
    (
        "TouchpointHqIngestStopped",
        [
            series("touchpoint_edge_outbox_depth", EDGE, "50x45"),
            series("touchpoint_hq_events_stored_total", HQ, "0+10x5 50x40"),
            series("touchpoint_hq_duplicate_events_total", HQ, "0x45"),
        ],
        "20m",
        "35m",
        {},
        "HQ has stored nothing for 15 minutes while stores have 50 events waiting",
    ),
]


def test_every_alert_has_a_firing_case() -> None:
    assert sorted(case[0] for case in CASES) == sorted(rule["alert"] for rule in rules())


def test_alerts_stay_quiet_then_fire_on_realistic_series(tmp_path: Path) -> None:
    """promtool's rule unit tests: each alert is silent before its condition has lasted, then fires."""
    descriptions = {rule["alert"]: rule["annotations"]["description"] for rule in rules()}
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in rules()}
    tests = []
    for alert, inputs, quiet, firing, labels, summary in CASES:
        expected = {
            "exp_labels": {**labels, "severity": severities[alert]},
            "exp_annotations": {"summary": summary, "description": descriptions[alert]},
        }
        tests.append(
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    {"eval_time": quiet, "alertname": alert, "exp_alerts": []},
                    {"eval_time": firing, "alertname": alert, "exp_alerts": [expected]},
                ],
            }
        )
    document = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = promtool("test", "rules", str(tmp_path / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
