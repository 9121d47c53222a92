"""Shared fixtures: real Mosquitto and PostgreSQL processes, fresh outboxes and configs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common import config as configuration
from drivers.simulator import Simulator
from sync.outbox import Outbox
from touchpoint.services import Mosquitto, PostgresCluster

SOURCE = "/stores/test-store/devices/mirror-1"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private broker on a free port; tests may stop, kill and restart it."""
    broker = Mosquitto(workdir=tmp_path / "mosquitto").start()
    yield broker
    broker.kill()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One private PostgreSQL cluster for the whole run (initdb takes about a second).

    Its directory is a fresh one under /tmp: as root, the cluster runs as ``postgres``, which
    cannot enter pytest's private (0700) temporary root.
    """
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database in the shared cluster, named after the test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    name += f"_{id(request) % 100000}"
    return postgres_cluster.create_database(name)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "edge.db", SOURCE, capacity=10_000)
    yield box
    box.close()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A virtual M100 reader on a pseudo-terminal (``.path``), reading present tags 50 times a second."""
    with Simulator("m100", rate=50) as sim:
        sim.start()
        yield sim


def edge_config(tmp_path: Path, **sections: dict) -> configuration.EdgeConfig:
    """An EdgeConfig for tests: a mirror in test-store with its outbox under ``tmp_path``."""
    document = {
        "device": {"store_id": "test-store", "device_id": "mirror-1", "role": "mirror"},
        "outbox": {"path": str(tmp_path / "edge.db")},
    }
    for name, table in sections.items():
        document[name] = {**document.get(name, {}), **table}
    return configuration.from_dict(configuration.EdgeConfig, document)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``condition`` until it holds; the timeout only guards against a hang, never asserts speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
