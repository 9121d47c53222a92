"""Delivery that loses nothing: the real `touchpoint sync` and `touchpoint hq --role ingest`
processes under broker, agent, HQ and network faults, with 10,000 events per device.

Each test writes a stream into real outbox files while the agents run (as `touchpoint edge`
would, through its own Outbox on the shared SQLite file), injects one kind of fault, and then
requires the same end state: HQ holds every written event exactly once by (source, id), seq
1..N per device with no gap reported, and every outbox is empty. Waits are bounded and say what
is still missing; outages are the fixed lengths the issue asks for, never assertions on speed.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from contract.envelope import MAX_EVENT_BYTES, edge_source
from contract.topics import DeviceTopics
from hq.core.records import DeviceReport
from hq.storage import Storage, open_storage
from sync import state
from sync.outbox import Outbox
from tests.acknowledger import ACK_SECRET, ack_key
from tests.faults import Service, TcpProxy
from tests.hq_support import Peer, events, payload
from touchpoint.services import Mosquitto

pytestmark = pytest.mark.slow
T = TypeVar("T")

TOTAL = 10_000  # events written per device in every test
GTIN, EPC = "80614141123458", "3074257BF7194E4000001A85"
VISIT: tuple[tuple[str, dict[str, Any]], ...] = (  # one shopper's session at a mirror
    ("session.started", {}),
    ("tag.arrived", {"zone": "cabin-1", "epc": EPC, "gtin": GTIN, "rssi": -52}),
    ("product.viewed", {"gtin": GTIN, "via": "tag"}),
    ("size.requested", {"gtin": GTIN}),
    ("tag.departed", {"zone": "cabin-1", "epc": EPC, "gtin": GTIN, "rssi": -60, "dwell_ms": 42_000}),
    ("feedback.submitted", {"touchpoint": "mirror", "scale": "nps", "score": 9}),
    ("session.ended", {}),
)


def shopper_event(n: int) -> tuple[str, dict[str, Any]]:
    """The ``n``-th event of an endless run of mirror sessions."""
    name, data = VISIT[n % len(VISIT)]
    return name, {"session_id": f"session-{n // len(VISIT)}", **data}


class Edge:
    """One device: its outbox, written by the test as the screen process would, and its agent."""

    def __init__(self, root: Path, store: str, device: str, mqtt_url: str) -> None:
        self.topics = DeviceTopics(store, device)
        self.source = edge_source(store, device)
        home = root / device
        home.mkdir()
        config = home / "edge.toml"
        config.write_text(
            f'[device]\nstore_id = "{store}"\ndevice_id = "{device}"\n'
            f'[outbox]\npath = "{home / "edge.db"}"\n'
            # A short ack timeout only makes re-sends after a fault come sooner.
            f'[mqtt]\nurl = "{mqtt_url}"\nack_timeout_s = 2\nack_key = "{ack_key(store, device)}"\n'
        )
        self.outbox = Outbox(home / "edge.db", self.source)
        self.agent = Service(["sync", "--config", str(config)], home / "agent.log")
        self.written: list[str] = []  # event ids, in seq order

    def record(self, first: int, count: int) -> None:
        stored = self.outbox.append_many([shopper_event(n) for n in range(first, first + count)])
        if len(stored) != count:
            raise AssertionError(f"{self.topics.device}: the outbox refused {count} events")
        self.written.extend(event["id"] for event in stored)

    def agent_running(self) -> str | None:
        """A check: the latest agent runs its loop (it has written sync_state since it started),
        so its SIGTERM handler is in place."""
        current = state.read(self.outbox.path)
        if current is not None and current.updated_at >= self.agent.started_at:
            return None
        return f"{self.topics.device}: the agent started last has not written sync_state yet"

    def close(self) -> None:
        self.agent.kill()
        self.outbox.close()


class Stream:
    """Writes TOTAL events into every edge's outbox, in bursts at a steady rate, on a thread."""

    def __init__(self, edges: Sequence[Edge], seconds: float, burst: int = 50) -> None:
        self.edges = edges
        self.interval = seconds * burst / TOTAL
        self.burst = burst
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        due = time.monotonic()
        try:
            for first in range(0, TOTAL, self.burst):
                for edge in self.edges:
                    edge.record(first, min(self.burst, TOTAL - first))
                due += self.interval
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
        except BaseException as error:  # re-raised in the test's thread by finish()
            self.error = error

    def finish(self, timeout: float = 120.0) -> None:
        """Wait until every event is written; raises what the writer raised."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert not self._thread.is_alive(), f"the stream did not finish writing within {timeout} s"


def hq_ingestor(root: Path, name: str, database_url: str, mqtt_url: str) -> Service:
    config = root / f"{name}.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n[mqtt]\nurl = "{mqtt_url}"\n'
        f'[hq]\nack_secret = "{ACK_SECRET}"\nclient_id = "hq-{name}"\n'
    )
    return Service(["hq", "--role", "ingest", "--config", str(config)], root / f"{name}.log")


def until(check: Callable[[], str | None], timeout: float, what: str) -> None:
    """Poll ``check`` (None when satisfied, else what is missing) up to ``timeout`` seconds.

    The bound only stops a hang; on expiry the failure names what was still missing.
    """
    deadline = time.monotonic() + timeout
    while (missing := check()) is not None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f} s; missing: {missing}")
        time.sleep(0.2)


def report(storage: Storage, edge: Edge) -> DeviceReport | None:
    """The edge's row of GET /v1/devices, None while HQ has not heard of it."""
    return next((r for r in storage.devices() if DeviceTopics(r.store, r.device) == edge.topics), None)


def contiguous(storage: Storage, edge: Edge) -> int:
    return getattr(report(storage, edge), "contiguous_seq", 0)


def at_hq(storage: Storage, edges: Sequence[Edge], count: int) -> Callable[[], str | None]:
    """A check: HQ holds seq 1..count of every edge without a hole."""

    def check() -> str | None:
        seen = {edge.topics.device: contiguous(storage, edge) for edge in edges}
        behind = [f"{device} at {seq}" for device, seq in seen.items() if seq < count]
        return f"HQ contiguous below {count}: {', '.join(behind)}" if behind else None

    return check


def delivered(storage: Storage, edges: Sequence[Edge]) -> Callable[[], str | None]:
    """A check: HQ holds all TOTAL events of every edge, no gap reported, every outbox empty."""

    def check() -> str | None:
        missing = []
        for edge in edges:
            row, depth = report(storage, edge), edge.outbox.stats().depth
            if row is None or row.contiguous_seq != TOTAL or row.gaps or depth:
                missing.append(
                    f"{edge.topics.device}: HQ contiguous {getattr(row, 'contiguous_seq', 0)}/{TOTAL}, "
                    f"gaps {list(getattr(row, 'gaps', ()))[:5]}, outbox depth {depth}"
                )
        return "; ".join(missing) or None

    return check


def assert_exactly_once(storage: Storage, edges: Sequence[Edge]) -> None:
    for edge in edges:
        rows = storage.fetchall("SELECT id, seq FROM events WHERE source = ?", (edge.source,))
        ids = {event_id for event_id, _ in rows}
        lost, foreign = set(edge.written) - ids, ids - set(edge.written)
        assert len(edge.written) == TOTAL
        assert not lost and not foreign, f"{edge.source}: {len(lost)} lost, {len(foreign)} never written"
        assert len(rows) == TOTAL, f"{edge.source}: {len(rows) - TOTAL} duplicate rows"
        assert sorted(int(seq) for _, seq in rows) == list(range(1, TOTAL + 1)), edge.source
        row = report(storage, edge)
        assert row is not None and (row.stored, row.contiguous_seq, row.gaps) == (TOTAL, TOTAL, ())
        stats = edge.outbox.stats()
        assert (stats.depth, stats.last_seq, stats.acked_upto, stats.dropped) == (0, TOTAL, TOTAL, 0)


def assert_clean_exit(*services: Service) -> None:
    """SIGTERM ends each process through its handler, with status 0."""
    for service in services:
        assert service.stop() == 0, service.log_tail()


@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    """Kills, stops and closes whatever a test registered, in reverse order, pass or fail."""
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture(scope="module", autouse=True)
def no_leftover_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    pattern = f"touchpoint (sync|hq) .*{tmp_path_factory.getbasetemp()}"
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    assert found == "", f"processes left running:\n{found}"


def sqlite_hq(tmp_path: Path, mqtt_url: str, cleanup: contextlib.ExitStack) -> tuple[Service, Storage]:
    """One `touchpoint hq --role ingest` on SQLite, running, and the test's view of its database."""
    url = f"sqlite:///{tmp_path / 'hq.db'}"
    storage = cleanup.enter_context(open_storage(url))
    return cleanup.enter_context(hq_ingestor(tmp_path, "hq", url, mqtt_url)), storage


def edges(tmp_path: Path, mqtt_url: str, count: int, cleanup: contextlib.ExitStack) -> list[Edge]:
    """``count`` mirrors with agents running, in a store named for this test alone: runs of this
    module side by side on one machine never share client ids or topics, even if ports meet."""
    store = f"store-{secrets.token_hex(4)}"
    made = [Edge(tmp_path, store, f"mirror-{n}", mqtt_url) for n in range(1, count + 1)]
    for edge in made:
        cleanup.callback(edge.close)
        edge.agent.start()
    return made


def deliver_through(
    fault: Callable[[], T],
    storage: Storage,
    devices: Sequence[Edge],
    seconds: float,
    hq: Sequence[Service],
    flowing: int = 1000,
) -> T:
    """Stream TOTAL events per device over ``seconds``; once ``flowing`` of each reached HQ, run
    ``fault``; then require delivery, clean SIGTERM exits and exactly-once storage.

    Returns what ``fault`` observed.
    """
    services = [*(edge.agent for edge in devices), *hq]
    try:
        with Stream(devices, seconds) as stream:
            until(at_hq(storage, devices, flowing), 120, "the stream flowing before the fault")
            observed = fault()
            stream.finish()
            until(delivered(storage, devices), 150, "delivery after the fault")
            for edge in devices:
                until(edge.agent_running, 30, "the agent up before SIGTERM")
    except AssertionError as error:
        logs = "\n".join(f"--- {s.log_path}\n{s.log_tail(1500)}" for s in services)
        raise AssertionError(f"{error}\n{logs}") from None
    assert_clean_exit(*services)
    assert_exactly_once(storage, devices)
    return observed


@pytest.mark.parametrize("end", ["stop", "kill"])
def test_broker_down_for_10_s_mid_stream(
    tmp_path: Path, mosquitto: Mosquitto, cleanup: contextlib.ExitStack, end: str
) -> None:
    """stop: SIGTERM, Mosquitto saves its persistence file, as a restart in production does.
    kill: SIGKILL, a power cut; the broker comes back without the sessions, retained acks and
    queued messages it held only in memory."""
    hq, storage = sqlite_hq(tmp_path, mosquitto.url, cleanup)
    (edge,) = edges(tmp_path, mosquitto.url, 1, cleanup)

    def outage() -> int:
        getattr(mosquitto, end)()
        time.sleep(10)
        waiting = edge.outbox.stats().depth
        mosquitto.start()
        return waiting

    waiting = deliver_through(outage, storage, [edge], 20, [hq])
    assert waiting > 0  # the screen kept recording while the broker was away


def test_sync_agent_killed_at_10_random_moments(
    tmp_path: Path, mosquitto: Mosquitto, cleanup: contextlib.ExitStack
) -> None:
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fault seed {seed}; repeat with FAULT_SEED={seed}")
    rng = random.Random(seed)
    hq, storage = sqlite_hq(tmp_path, mosquitto.url, cleanup)
    (edge,) = edges(tmp_path, mosquitto.url, 1, cleanup)

    def kills() -> list[tuple[int, int]]:
        """(HQ contiguous seq, outbox depth) at each SIGKILL."""
        seen = []
        for _ in range(10):
            time.sleep(rng.uniform(0.3, 2.0))  # a random moment of this agent's life
            edge.agent.kill()
            seen.append((contiguous(storage, edge), edge.outbox.stats().depth))
            edge.agent.start()
        print("at each kill (HQ contiguous seq, outbox depth):", seen)
        return seen

    seen = deliver_through(kills, storage, [edge], 15, [hq], flowing=1)
    assert edge.agent.starts == 11
    assert any(0 < at < TOTAL and depth for at, depth in seen)  # killed mid-stream with work left


def test_hq_ingestor_killed_and_restarted_mid_stream(
    tmp_path: Path, mosquitto: Mosquitto, cleanup: contextlib.ExitStack
) -> None:
    hq, storage = sqlite_hq(tmp_path, mosquitto.url, cleanup)
    (edge,) = edges(tmp_path, mosquitto.url, 1, cleanup)

    def crash() -> None:
        hq.kill()
        backlog = edge.outbox.stats().depth
        until(
            lambda: None if edge.outbox.stats().depth >= backlog + 1000 else "1000 more events waiting",
            60,
            "a backlog growing while HQ is down",
        )
        hq.start()

    deliver_through(crash, storage, [edge], 10, [hq], flowing=2000)
    assert hq.starts == 2


def test_network_drop_of_30_s_between_three_agents_and_the_broker(
    tmp_path: Path, mosquitto: Mosquitto, cleanup: contextlib.ExitStack
) -> None:
    hq, storage = sqlite_hq(tmp_path, mosquitto.url, cleanup)  # HQ's own link stays up
    proxy = cleanup.enter_context(TcpProxy(mosquitto.port))
    devices = edges(tmp_path, proxy.url, 3, cleanup)

    def drop() -> tuple[int, list[int]]:
        proxy.cut()
        before = proxy.accepted
        time.sleep(30)
        waiting = [edge.outbox.stats().depth for edge in devices]
        proxy.restore()
        return before, waiting

    before, waiting = deliver_through(drop, storage, devices, 40, [hq])
    assert all(waiting), waiting  # every device recorded events it could not send
    assert proxy.accepted >= before + len(devices)  # each agent reconnected through the proxy


def bad_payloads(device: DeviceTopics) -> list[tuple[bytes, str, str]]:
    """(payload, dead-letter kind, a fragment of the reason) for each kind of input HQ refuses.

    Each event claims seq 1 of ``device``, which HQ holds already, so a refused event that
    still accounts for its seq changes nothing.
    """
    good = events([1], device)[0]
    missing_id, wrong_source, unknown_type, oversized = (copy.deepcopy(good) for _ in range(4))
    missing_id.pop("id")
    wrong_source["source"] = edge_source(device.store, "mirror-9")
    unknown_type["type"] = "touchpoint.tag.teleported"
    oversized["data"]["padding"] = "x" * MAX_EVENT_BYTES
    return [
        (b'[{"specversion": "1.0", "id": ', "json", "invalid JSON"),
        (payload([missing_id]), "id", "missing"),
        (payload([wrong_source]), "source does not match topic", "mirror-9"),
        (payload([unknown_type]), "type", "tag.teleported"),
        (payload([oversized]), "size", str(MAX_EVENT_BYTES)),
    ]


@pytest.mark.postgres
def test_two_hq_workers_share_three_devices_into_one_postgresql(
    tmp_path: Path, postgres_url: str, cleanup: contextlib.ExitStack
) -> None:
    """With bad payloads from a stray client mid-stream: dead-lettered, and ingestion goes on.

    This broker logs every delivery (debug), so the test can see both workers took batches.
    """
    broker = Mosquitto(workdir=tmp_path / "broker", extra_config="log_type debug\n").start()
    cleanup.callback(broker.kill)
    storage = cleanup.enter_context(open_storage(postgres_url))
    workers = [cleanup.enter_context(hq_ingestor(tmp_path, f"hq-{n}", postgres_url, broker.url)) for n in (1, 2)]
    devices = edges(tmp_path, broker.url, 3, cleanup)
    target = devices[0]
    bad = bad_payloads(target.topics)

    def stray_client() -> None:
        with Peer(broker.url, client_id="stray-client") as stray:
            for body, _, _ in bad:
                stray.send(target.topics.events, body)

    deliver_through(stray_client, storage, devices, 12, workers)
    letters = storage.dead_letters()
    assert sorted(letter.kind for letter in letters) == sorted(kind for _, kind, _ in bad)
    for _, kind, fragment in bad:
        (letter,) = [letter for letter in letters if letter.kind == kind]
        assert fragment in letter.reason and letter.topic == target.topics.events, letter
    log = (tmp_path / "broker" / "mosquitto.log").read_text()
    takers = set(re.findall(r"Sending PUBLISH to (hq-\S+)-1 \(d\d, q1, r0, m\d+, '\S+/events'", log))
    assert takers == {"hq-hq-1", "hq-hq-2"}, takers  # hq_ingestor's [hq] client_id of each process
