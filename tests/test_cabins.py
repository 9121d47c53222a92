"""Issue 15's "done when", end to end: real edges reading real frames from pseudo-terminals.

Two readers, or one reader with two antenna ports (a Mercury module on a pty, a fixed reader
over LLRP on a TCP port), cover two cabins; the garment is shown on the
mirror of the cabin that hears it loudest, a stray weak read shows nothing, a garment carried next
door moves once after the hold time, and every reader protocol gives the same presence events.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from drivers import m100
from drivers.simulator import Simulator
from kiosk import create_app, shutdown
from sync.outbox import Outbox
from tests.conftest import wait_until
from tests.kiosk_support import JEANS_EPC as JEANS
from tests.kiosk_support import SHIRT_EPC as SHIRT
from tests.kiosk_support import SHIRT_M, edge_config, edge_of
from tests.llrp_peer import LlrpPeer

CABINS = {"1": "cabin-1", "2": "cabin-2"}


@contextlib.contextmanager
def running_edge(tmp_path: Path, outbox: Outbox, readers: list[dict[str, Any]], **presence: float) -> Iterator[Flask]:
    config = edge_config(
        tmp_path,
        readers=readers,
        presence={"margin_db": 6.0, "hold_s": 1.0, **presence},
        session={"cabin_empty_s": 60},
    )
    app = create_app(config, outbox=outbox)
    try:
        edge = edge_of(app)
        assert wait_until(lambda: all(r.status().state.value == "connected" for r in edge.readers))
        yield app
    finally:
        shutdown(app)


def tag_events(outbox: Outbox) -> list[tuple[str, str, str]]:
    """(type, zone, epc) of every tag event in the outbox, in order."""
    found = []
    for pending in outbox.pending(limit=10_000, max_bytes=10**9):
        event = json.loads(pending.body)
        if event["type"].startswith("touchpoint.tag."):
            found.append((event["type"].removeprefix("touchpoint.tag."), event["data"]["zone"], event["data"]["epc"]))
    return found


def shown(app: Flask, zone: str) -> list[str]:
    """What the mirror screen of ``zone`` shows: the EPCs GET /api/presence lists for its zone."""
    return [t["epc"] for t in app.test_client().get("/api/presence").json["zones"].get(zone, [])]


def test_two_readers_show_a_garment_only_on_the_loudest_cabins_mirror(tmp_path: Path, outbox: Outbox) -> None:
    with Simulator("m100", rate=50, seed=1) as one, Simulator("m100", rate=50, seed=2) as two:
        one.start()
        two.start()
        readers = [
            {"protocol": "m100", "url": one.path, "zone": "cabin-1", "min_reads": 3},
            {"protocol": "m100", "url": two.path, "zone": "cabin-2", "min_reads": 3},
        ]
        with running_edge(tmp_path, outbox, readers) as app:
            one.present(SHIRT, rssi=-45)
            two.present(SHIRT, rssi=-72)  # through the wall
            assert wait_until(lambda: shown(app, "cabin-1") == [SHIRT])
            time.sleep(2.5)  # longer than the hold: nothing changes
            assert shown(app, "cabin-1") == [SHIRT] and shown(app, "cabin-2") == []
            assert app.test_client().get("/?zone=cabin-2").status_code == 200  # cabin 2's mirror, empty
            assert app.test_client().get("/?zone=cabin-9").status_code == 404
            assert edge_of(app).readers[1].status().reads_total > 50  # cabin 2 did hear it, all along
    assert tag_events(outbox) == [("arrived", "cabin-1", SHIRT)]


@contextlib.contextmanager
def multiport_reader(protocol: str) -> Iterator[tuple[Simulator | LlrpPeer, str]]:
    """A Mercury module on a pty, or a fixed LLRP reader on a TCP port: the field and the reader's url."""
    if protocol == "llrp":
        with LlrpPeer(rate=50) as peer:
            yield peer, f"127.0.0.1:{peer.port}"
        return
    with Simulator(protocol, rate=50, seed=3) as module:
        module.start()
        yield module, module.path


@pytest.mark.parametrize("protocol", ["mercury", "llrp"])
def test_two_antenna_ports_of_one_reader_show_it_only_in_cabin_one(
    protocol: str, tmp_path: Path, outbox: Outbox
) -> None:
    with multiport_reader(protocol) as (module, url):
        readers = [{"protocol": protocol, "url": url, "zones": CABINS, "min_reads": 3}]
        with running_edge(tmp_path, outbox, readers) as app:
            module.present(SHIRT, rssi=-45, antenna=1)
            module.present(SHIRT, rssi=-72, antenna=2)
            module.present(JEANS, rssi=-50, antenna=3)  # a port no zone is mapped to
            assert wait_until(lambda: shown(app, "cabin-1") == [SHIRT])
            time.sleep(2.5)
            assert shown(app, "cabin-1") == [SHIRT] and shown(app, "cabin-2") == []
            assert edge_of(app).ignored["unmapped_port"] > 0
    assert tag_events(outbox) == [("arrived", "cabin-1", SHIRT)]


@contextlib.contextmanager
def raw_pty() -> Iterator[tuple[int, str]]:
    """A pseudo-terminal, both ends raw: (the end the test writes frames to, the path the reader opens)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def test_a_single_read_at_minus_80_shows_nothing(tmp_path: Path, outbox: Outbox) -> None:
    with raw_pty() as (line, path):
        readers = [{"protocol": "m100", "url": path, "zone": "cabin-1", "min_rssi": -80, "min_reads": 2}]
        with running_edge(tmp_path, outbox, readers) as app:
            os.write(line, m100.encode_notice(SHIRT, -80))
            assert wait_until(lambda: edge_of(app).readers[0].status().reads_total == 1)
            time.sleep(1.5)  # past the arrival window, with the ticker running
            assert shown(app, "cabin-1") == [] and tag_events(outbox) == []
            os.write(line, m100.encode_notice(JEANS, -81))  # below the floor: not even a read for presence
            assert wait_until(lambda: edge_of(app).ignored["below_floor"] == 1)
            for _ in range(2):  # the same garment read twice within the window: now it is there
                os.write(line, m100.encode_notice(SHIRT, -60))
            assert wait_until(lambda: shown(app, "cabin-1") == [SHIRT])
    assert tag_events(outbox)[0] == ("arrived", "cabin-1", SHIRT)


def test_a_garment_carried_to_the_next_cabin_moves_once_after_the_hold(tmp_path: Path, outbox: Outbox) -> None:
    with Simulator("mercury", rate=50, seed=4) as module:
        module.start()
        readers = [{"protocol": "mercury", "url": module.path, "zones": CABINS, "min_reads": 3}]
        with running_edge(tmp_path, outbox, readers, hold_s=1.5) as app:
            module.present(SHIRT, rssi=-45, antenna=1)
            module.present(SHIRT, rssi=-72, antenna=2)
            assert wait_until(lambda: shown(app, "cabin-1") == [SHIRT])
            carried = time.time()
            module.present(SHIRT, rssi=-72, antenna=1)  # now cabin 1 hears it through the wall
            module.present(SHIRT, rssi=-45, antenna=2)
            assert wait_until(lambda: shown(app, "cabin-2") == [SHIRT])
            moved = time.time()
            time.sleep(2.0)
            assert shown(app, "cabin-2") == [SHIRT] and shown(app, "cabin-1") == []
            arrived = edge_of(app).presence.present()["cabin-2"][0].since
    assert moved - carried >= 1.5 and arrived - carried >= 1.5
    assert tag_events(outbox) == [
        ("arrived", "cabin-1", SHIRT),
        ("departed", "cabin-1", SHIRT),
        ("arrived", "cabin-2", SHIRT),
    ]


def presence_events_for(protocol: str, tmp_path: Path) -> list[tuple[str, str, str, str | None]]:
    """Two garments into cabin 1 through one reader of ``protocol``, one taken out, then the other."""
    (tmp_path / protocol).mkdir()
    outbox = Outbox(tmp_path / protocol / "edge.db", "/stores/test-store/devices/mirror-1", capacity=10_000)
    try:
        with multiport_reader(protocol) as (sim, url):
            reader: dict[str, Any] = {"protocol": protocol, "url": url, "zone": "cabin-1", "departure_s": 1.0}
            if protocol != "m100":
                reader = {**reader, "zones": {"1": "cabin-1"}}
                del reader["zone"]
            with running_edge(tmp_path / protocol, outbox, [reader]) as app:
                sim.present(SHIRT, rssi=-50)
                sim.present(JEANS, rssi=-55)
                assert wait_until(lambda: sorted(shown(app, "cabin-1")) == sorted([SHIRT, JEANS]))
                sim.remove(JEANS)
                assert wait_until(lambda: shown(app, "cabin-1") == [SHIRT])
                sim.remove(SHIRT)
                assert wait_until(lambda: shown(app, "cabin-1") == [])
        events = [json.loads(p.body) for p in outbox.pending(limit=1000, max_bytes=10**9)]
        return sorted(
            (e["type"], e["data"]["zone"], e["data"]["epc"], e["data"]["gtin"])
            for e in events
            if e["type"].startswith("touchpoint.tag.")
        )
    finally:
        outbox.close()


def test_mercury_and_llrp_deliver_the_same_presence_events_as_m100(tmp_path: Path) -> None:
    expected = sorted(
        (f"touchpoint.tag.{kind}", "cabin-1", epc, gtin)
        for kind in ("arrived", "departed")
        for epc, gtin in ((SHIRT, SHIRT_M), (JEANS, "04012345030013"))
    )
    assert presence_events_for("m100", tmp_path) == expected
    assert presence_events_for("mercury", tmp_path) == expected
    assert presence_events_for("llrp", tmp_path) == expected
