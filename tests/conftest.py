"""Shared fixtures: real Mosquitto and PostgreSQL processes, fresh outboxes, HQ storages, the edge
app and a test client of whichever ``app`` a module uses (HQ modules override ``app``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from drivers.simulator import Simulator
from hq.storage import Storage, open_storage
from kiosk import shutdown
from sync.outbox import Outbox
from tests.kiosk_support import Clock, build
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


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``condition`` until it holds; the timeout only guards against a hang, never asserts speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """An empty HQ storage of each backend (PostgreSQL in a new database of the shared cluster)."""
    store = make_storage(request.param, tmp_path, request)
    yield store
    store.close()


def make_storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    """A fresh storage of either backend (the postgres one in a new database)."""
    if backend == "sqlite":
        return open_storage(f"sqlite:///{tmp_path}/hq.db")
    return open_storage(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, outbox: Outbox, clock: Clock) -> Iterator[Flask]:
    """A mirror's edge app with a loop:// reader that is not started, on the hand-driven clock."""
    app = build(tmp_path, outbox, clock)
    yield app
    shutdown(app)


@pytest.fixture
def kiosk(tmp_path: Path, outbox: Outbox, clock: Clock) -> Iterator[Flask]:
    app = build(tmp_path, outbox, clock, role="kiosk")
    yield app
    shutdown(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The ``system`` test boots a whole Debian system (tests/test_system_check.py): it runs only
    when a ``-m`` expression names the marker, e.g. ``./dev test -m system``."""
    if "system" in (config.getoption("markexpr") or ""):
        return
    deselected = [item for item in items if item.get_closest_marker("system")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("system")]
