"""The outbox: gap-free seq in the insert's transaction, bounded, never loses silently."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from contract.envelope import validate
from sync.outbox import Outbox
from tests.conftest import SOURCE


def test_events_get_contiguous_seq_and_a_valid_envelope(outbox: Outbox) -> None:
    first = outbox.append("session.started", {"session_id": "s1"})
    second = outbox.append("product.viewed", {"session_id": "s1", "gtin": "80614141123458", "via": "tag"})
    assert first is not None and second is not None
    assert (first["seq"], second["seq"]) == (1, 2)
    stored = [json.loads(p.body) for p in outbox.pending()]
    assert stored == [first, second]
    for event in stored:
        validate(event)
        assert event["source"] == SOURCE


def test_seq_is_never_reused_after_the_outbox_empties(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "edge.db", SOURCE)
    box.append_many([("session.started", {"session_id": "a"})] * 3)
    assert box.acknowledge(3) == 3
    box.close()
    reopened = Outbox(tmp_path / "edge.db", SOURCE)
    event = reopened.append("session.started", {"session_id": "b"})
    assert event is not None and event["seq"] == 4
    assert reopened.stats().acked_upto == 3


def test_acknowledge_removes_only_what_it_covers(outbox: Outbox) -> None:
    outbox.append_many([("session.started", {"session_id": str(i)}) for i in range(10)])
    assert outbox.acknowledge(4) == 4
    assert [p.seq for p in outbox.pending()] == [5, 6, 7, 8, 9, 10]
    assert outbox.acknowledge(2) == 0  # a stale ack changes nothing
    assert outbox.stats().acked_upto == 4
    assert outbox.stats().depth == 6


def test_pending_respects_count_and_bytes_but_always_returns_one(outbox: Outbox) -> None:
    outbox.append_many([("session.started", {"session_id": "s", "padding": "x" * 500})] * 10)
    assert len(outbox.pending(limit=3)) == 3
    small = outbox.pending(max_bytes=1200)
    assert 1 <= len(small) <= 2
    assert len(outbox.pending(max_bytes=10)) == 1
    assert [p.seq for p in outbox.pending(after_seq=8)] == [9, 10]


def test_full_outbox_refuses_new_events_and_counts_them(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "edge.db", SOURCE, capacity=1000)
    stored = box.append_many([("session.started", {"session_id": "s"})] * 1000)
    assert len(stored) == 1000
    assert box.append("session.ended", {"session_id": "s"}) is None
    assert box.append_many([("session.ended", {"session_id": "s"})] * 2) == []
    stats = box.stats()
    assert (stats.depth, stats.last_seq, stats.dropped) == (1000, 1000, 3)
    box.acknowledge(10)
    late = box.append("session.ended", {"session_id": "s"})
    assert late is not None and late["seq"] == 1001  # no gap for HQ to report


def test_full_disk_loses_no_stored_event_and_counts_the_refused(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "edge.db", SOURCE)
    box.append("session.started", {"session_id": "s"})
    pages = box.conn.execute("PRAGMA page_count").fetchone()[0]
    box.conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # the disk is now full
    refused = 0
    for _ in range(200):
        if box.append("session.started", {"session_id": "s", "padding": "y" * 2000}) is None:
            refused += 1
    assert refused > 0
    assert box.stats().dropped == refused
    assert [p.seq for p in box.pending(limit=1000)][0] == 1
    assert len(box.pending(limit=1000)) == 200 - refused + 1


def test_two_processes_share_the_file(tmp_path: Path) -> None:
    """The edge appends while the sync agent acknowledges, through separate connections."""
    writer = Outbox(tmp_path / "edge.db", SOURCE)
    reader = Outbox(tmp_path / "edge.db", SOURCE)

    def write() -> None:
        for i in range(300):
            writer.append("session.started", {"session_id": str(i)})

    thread = threading.Thread(target=write)
    thread.start()
    acked = 0
    while thread.is_alive() or reader.pending(after_seq=acked):
        batch = reader.pending(after_seq=acked, limit=50)
        if batch:
            assert [p.seq for p in batch] == list(range(acked + 1, acked + 1 + len(batch)))
            acked = batch[-1].seq
            reader.acknowledge(acked)
    thread.join()
    assert acked == 300 and reader.stats().depth == 0
