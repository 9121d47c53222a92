"""``touchpoint hq recompute`` and ``add-user``, and the schedule inside ``touchpoint hq``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug.security import check_password_hash

from common import config as configuration
from hq.mqtt import publisher
from hq.storage import open_storage
from tests.hq_dataset import generate
from tests.hq_support import Peer
from tests.hq_web_support import listening, live_hq, load
from touchpoint.cli import main
from touchpoint.services import Mosquitto, free_port


def write_config(tmp_path: Path, mqtt_url: str) -> Path:
    path = tmp_path / "hq.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/hq.db"\n[mqtt]\nurl = "{mqtt_url}"\n', encoding="utf-8")
    return path


def test_recompute_publishes_every_store_retained(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = write_config(tmp_path, mosquitto.url)
    with open_storage(f"sqlite:///{tmp_path}/hq.db") as storage:
        load(storage, generate(seed=3, customers=30))
        stores = storage.stores()
    result = CliRunner().invoke(main, ["hq", "recompute", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"published recommendations to {len(stores)} store(s)" in result.output
    with Peer(mosquitto.url, ["touchpoint/v1/+/recommendations"], "test-listener") as listener:
        got = {}
        while len(got) < len(stores):
            message = listener.next()
            got[message.topic.split("/")[2]] = json.loads(message.payload)
    assert sorted(got) == stores
    assert all(doc["store"] == store and doc["items"] for store, doc in got.items())


def test_recompute_without_a_broker_fails_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher, "CONNECT_TIMEOUT_S", 0.5)
    path = write_config(tmp_path, f"mqtt://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(main, ["hq", "recompute", "--config", str(path)])
    assert result.exit_code == 1 and "unreachable" in result.output


def test_add_user_prints_a_line_that_verifies(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["hq", "add-user", "anna"], input="a long password\na long password\n")
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    (tmp_path / "hq.toml").write_text(f"[hq.users]\n{line}\n", encoding="utf-8")
    users = configuration.load_hq(tmp_path / "hq.toml").hq.users
    assert check_password_hash(users["anna"], "a long password") and not check_password_hash(users["anna"], "x")
    short = CliRunner().invoke(main, ["hq", "add-user", "anna", "--password", "short"])
    assert short.exit_code == 2 and "at least 10" in short.output


def test_touchpoint_hq_publishes_on_its_schedule(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = listening(tmp_path, mqtt={"url": mosquitto.url}, hq={"recompute_interval_s": 1})
    with open_storage(config.database.url) as storage:
        load(storage, generate(seed=3, customers=10))
    versions: dict[str, list[str]] = {}
    with live_hq(config, role="web"), Peer(mosquitto.url, ["touchpoint/v1/+/recommendations"], "listener") as peer:
        while all(len(v) < 2 for v in versions.values()) or not versions:
            message = peer.next(30)
            versions.setdefault(message.topic.split("/")[2], []).append(json.loads(message.payload)["version"])
    twice = [v for v in versions.values() if len(v) == 2]
    assert twice and twice[0][0] < twice[0][1]  # a second run, a second later, without being asked
