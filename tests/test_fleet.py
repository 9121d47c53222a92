"""A fleet against one HQ (issue 13): 50 real `touchpoint sync` processes, each with its own
outbox, and one real `touchpoint hq --role ingest` on SQLite, through a private Mosquitto.

The test writes a few hundred events into every outbox through `sync.outbox.Outbox` (some
before the agents start, the rest while the run goes on), restarts the broker (SIGTERM, with
persistence) and then SIGKILLs HQ and starts it again, both mid-stream. It proves that at the
end HQ holds every written event exactly once by (source, id), that every device's contiguous
seq equals its outbox's last seq with no gap reported, that every outbox is drained, and that
every process ends cleanly on SIGTERM. Every wait is bounded and names what is missing.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from hq.storage import Storage, open_storage
from tests.conftest import wait_until
from tests.faults import Service
from tests.test_delivery_faults import Edge, hq_ingestor, report, until
from touchpoint.services import Mosquitto

pytestmark = pytest.mark.slow

DEVICES = 50
BEFORE = 200  # events per outbox written before the agents start
DURING = 100  # events per outbox written while the faults happen
BURST = 5


class Writer:
    """Appends DURING events to every outbox, BURST at a time, on a thread (as the screens would)."""

    def __init__(self, edges: Sequence[Edge], seconds: float) -> None:
        self.edges = edges
        self.interval = seconds * BURST / DURING
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fleet-writer", daemon=True)

    def wrote(self, rounds: int) -> Callable[[], str | None]:
        """A check: every outbox got ``rounds`` bursts from this writer."""
        want = BEFORE + rounds * BURST
        return lambda: None if all(len(e.written) >= want for e in self.edges) else f"fewer than {rounds} bursts"

    def start(self) -> Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for first in range(BEFORE, BEFORE + DURING, BURST):
                for edge in self.edges:
                    edge.record(first, BURST)
                time.sleep(self.interval)
        except BaseException as error:  # re-raised in the test's thread by finish()
            self.error = error

    def finish(self, timeout: float = 60.0) -> None:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert not self._thread.is_alive(), f"the writer did not finish within {timeout} s"


def backlog(edges: Sequence[Edge]) -> int:
    """Events waiting in all outboxes together."""
    return sum(edge.outbox.stats().depth for edge in edges)


def stored(storage: Storage) -> int:
    ((count,),) = storage.fetchall("SELECT count(*) FROM events")
    return int(count)


def every_device_heard(storage: Storage, edges: Sequence[Edge]) -> Callable[[], str | None]:
    def check() -> str | None:
        silent = [edge.topics.device for edge in edges if getattr(report(storage, edge), "contiguous_seq", 0) == 0]
        return f"{len(silent)} devices without a stored event: {silent[:5]}" if silent else None

    return check


def more_stored_than(storage: Storage, count: int) -> Callable[[], str | None]:
    return lambda: None if stored(storage) > count else f"HQ still at {stored(storage)} events"


def delivered(storage: Storage, edges: Sequence[Edge]) -> Callable[[], str | None]:
    """HQ's contiguous seq of every device equals its outbox's last seq, no gap, outbox empty."""

    def check() -> str | None:
        missing = []
        for edge in edges:
            row, stats = report(storage, edge), edge.outbox.stats()
            if row is None or row.contiguous_seq != stats.last_seq or row.gaps or stats.depth:
                missing.append(
                    f"{edge.topics.device}: HQ contiguous {getattr(row, 'contiguous_seq', 0)}/{stats.last_seq}, "
                    f"gaps {list(getattr(row, 'gaps', ()))[:5]}, outbox depth {stats.depth}"
                )
        return f"{len(missing)} devices: " + "; ".join(missing[:10]) if missing else None

    return check


@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


def test_fifty_agents_through_a_broker_restart_and_an_hq_restart(
    tmp_path: Path, mosquitto: Mosquitto, cleanup: contextlib.ExitStack
) -> None:
    started = time.monotonic()
    total = BEFORE + DURING
    url = f"sqlite:///{tmp_path / 'hq.db'}"
    hq: Service = cleanup.enter_context(hq_ingestor(tmp_path, "hq", url, mosquitto.url))
    assert wait_until(lambda: (tmp_path / "hq.db").exists(), 30), hq.log_tail()
    storage = cleanup.enter_context(open_storage(url))
    store = f"fleet-{secrets.token_hex(4)}"  # topics and client ids of this run alone
    edges = [Edge(tmp_path, store, f"mirror-{n}", mosquitto.url) for n in range(1, DEVICES + 1)]
    for edge in edges:
        cleanup.callback(edge.close)
        edge.record(0, BEFORE)
    for edge in edges:
        edge.agent.start()
    services = [hq, *(edge.agent for edge in edges)]
    try:
        until(every_device_heard(storage, edges), 60, "every agent delivering before the faults")
        writer = Writer(edges, seconds=12).start()
        until(writer.wrote(3), 30, "the writer under way")
        at_broker_restart = stored(storage)
        mosquitto.stop()  # SIGTERM: Mosquitto saves its persistence file
        time.sleep(2)  # the screens go on writing meanwhile
        backlog_broker = backlog(edges)
        mosquitto.start()  # on the same port
        until(more_stored_than(storage, at_broker_restart), 30, "delivery after the broker restart")
        hq.kill()  # SIGKILL mid-stream: whatever it had not committed it never acknowledged
        at_hq_restart = stored(storage)
        time.sleep(2)  # batches published meanwhile wait in the broker for HQ's kept session
        backlog_hq = backlog(edges)
        hq.start()
        until(more_stored_than(storage, at_hq_restart), 30, "delivery after the HQ restart")
        writer.finish()
        until(delivered(storage, edges), 60, "every event delivered and every outbox drained")
        for edge in edges:
            until(edge.agent_running, 30, "the agent's loop running before SIGTERM")
    except AssertionError as error:
        logs = "\n".join(f"--- {s.log_path}\n{s.log_tail(1500)}" for s in services[:4])
        raise AssertionError(f"{error}\n{logs}") from None
    for service in services:  # SIGTERM ends each process through its handler, with status 0
        assert service.stop() == 0, service.log_tail()
    print(
        f"fleet: {DEVICES} devices x {total} events; {at_broker_restart} stored at the broker restart, "
        f"{at_hq_restart} at the HQ restart; outboxes held {backlog_broker} and {backlog_hq} events"
        f" when each came back; {time.monotonic() - started:.1f} s"
    )
    for edge in edges:
        rows = storage.fetchall("SELECT id, seq FROM events WHERE source = ?", (edge.source,))
        ids = {event_id for event_id, _ in rows}
        lost, foreign = set(edge.written) - ids, ids - set(edge.written)
        assert len(edge.written) == total
        assert not lost and not foreign, f"{edge.source}: {len(lost)} lost, {len(foreign)} never written"
        assert len(rows) == total, f"{edge.source}: {len(rows) - total} duplicate rows"
        assert sorted(int(seq) for _, seq in rows) == list(range(1, total + 1)), edge.source
        row = report(storage, edge)
        assert row is not None and (row.stored, row.contiguous_seq, row.gaps) == (total, total, ())
        stats = edge.outbox.stats()
        assert (stats.depth, stats.last_seq, stats.acked_upto, stats.dropped) == (0, total, total, 0)
    assert hq.starts == 2
    assert backlog_broker > 0 and backlog_hq > 0  # both faults hit the fleet with work waiting
    ((ranges,),) = storage.fetchall("SELECT count(*) FROM seq_ranges")
    assert ranges == 0  # no device holds a stored range above a hole
