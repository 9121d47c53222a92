"""Server-sent events: the hub's fan-out rules, and a real browser-like client on the real cheroot
server receiving a tag that a simulated reader wrote to a pseudo-terminal."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers import encode_sgtin96
from drivers.simulator import Simulator
from kiosk.edge import EXTENSION
from kiosk.server import EdgeServer
from kiosk.stream import Hub, Message
from tests.kiosk_support import edge_config

SHIRT_M = "04012345010015"


def drain(hub: Hub, sub: object, count: int) -> list[str]:
    stream = hub.stream(sub, heartbeat_s=0.01)  # type: ignore[arg-type]
    return [next(stream) for _ in range(count)]


def test_wire_format_has_id_event_and_one_json_line() -> None:
    text = Message(7, "tag", {"epc": "30AB", "note": "zwei\nZeilen"}).encode()
    assert text == 'id: 7\nevent: tag\ndata: {"epc":"30AB","note":"zwei\\nZeilen"}\n\n'


def test_every_client_gets_every_message_in_order_after_retry() -> None:
    hub = Hub()
    first, second = hub.subscribe(), hub.subscribe()
    for n in range(3):
        hub.publish("tag", {"n": n})
    for sub in (first, second):
        lines = drain(hub, sub, 4)
        assert lines[0] == "retry: 2000\n\n"
        assert [json.loads(line.split("data: ")[1]) for line in lines[1:]] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [line.split("\n")[0] for line in lines[1:]] == ["id: 1", "id: 2", "id: 3"]


def test_a_slow_client_is_dropped_and_never_blocks_the_publisher() -> None:
    hub = Hub(client_queue=4)
    slow, fast = hub.subscribe(), hub.subscribe()
    fast_stream = hub.stream(fast, heartbeat_s=0.01)
    next(fast_stream)  # retry:
    received = []
    for n in range(50):
        hub.publish("tag", {"n": n})
        received.append(next(fast_stream))
    assert slow.dropped and not fast.dropped
    assert hub.clients == 1 and hub.dropped_clients == 1
    assert len(received) == 50
    slow_stream = hub.stream(slow)
    assert next(slow_stream).startswith("retry:")
    with pytest.raises(StopIteration):  # the dropped client's stream ends; its browser reconnects
        next(slow_stream)


def test_reconnect_resumes_after_last_event_id() -> None:
    hub = Hub()
    for n in range(5):
        hub.publish("tag", {"n": n})
    sub = hub.subscribe(last_event_id=3)
    lines = drain(hub, sub, 3)
    assert [line.split("\n")[0] for line in lines[1:]] == ["id: 4", "id: 5"]


def test_heartbeat_when_quiet_and_close_ends_streams() -> None:
    hub = Hub()
    sub = hub.subscribe()
    stream = hub.stream(sub, heartbeat_s=0.01)
    assert next(stream).startswith("retry:")
    assert next(stream) == ": heartbeat\n\n"
    hub.close()
    assert list(stream) == []
    assert hub.clients == 0
    late = hub.subscribe()  # after shutdown a new client ends at once
    assert list(hub.stream(late)) == ["retry: 2000\n\n"]


@pytest.fixture
def server(tmp_path: Path, simulator: Simulator) -> Iterator[EdgeServer]:
    config = edge_config(
        tmp_path,
        web={"listen": "127.0.0.1:0", "threads": 4, "metrics_token": "scrape-0123456789"},
        reader={"protocol": "m100", "url": simulator.path, "zone": "cabin-2", "departure_s": 0.5},
    )
    edge_server = EdgeServer(config)
    edge_server.start()
    yield edge_server
    edge_server.stop()


def connect(server: EdgeServer) -> http.client.HTTPConnection:
    host, port = server.url.removeprefix("http://").strip("/").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def read_event(response: http.client.HTTPResponse, wanted: str) -> dict[str, object]:
    """Read SSE lines until an event named ``wanted``; returns its id and data."""
    event, event_id = "", ""
    while True:
        line = response.readline().decode()
        assert line, "stream ended"
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("id: "):
            event_id = line[4:].strip()
        elif line.startswith("data: ") and event == wanted:
            return {"id": int(event_id), **json.loads(line[6:])}


def test_a_tag_on_the_pty_reaches_the_browser(server: EdgeServer, simulator: Simulator) -> None:
    conn = connect(server)
    try:
        conn.request("GET", "/api/stream")
        response = conn.getresponse()
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        assert response.readline() == b"retry: 2000\n"
        epc = encode_sgtin96(SHIRT_M, 42, 7)
        simulator.present(epc, rssi=-45)
        session = read_event(response, "session")
        arrived = read_event(response, "tag")
        assert session["kind"] == "started"
        assert (arrived["kind"], arrived["zone"], arrived["epc"], arrived["gtin"]) == (
            "arrived",
            "cabin-2",
            epc,
            SHIRT_M,
        )
        assert arrived["product"]["name"] == {"de": "Leinenhemd", "en": "Linen shirt"}  # type: ignore[index]
        simulator.remove(epc)
        departed = read_event(response, "tag")  # the ticker notices the silence
        assert (departed["kind"], departed["epc"]) == ("departed", epc)
        assert departed["id"] > arrived["id"]
    finally:
        conn.close()
    status = connect(server)
    try:
        status.request("GET", "/api/status")
        body = json.loads(status.getresponse().read())
        assert body["reader"]["state"] == "connected" and body["reader"]["reads_total"] > 0
        assert body["outbox"]["last_seq"] >= 4  # started, arrived, viewed, departed
        status.request("GET", "/metrics", headers={"Authorization": "Bearer scrape-0123456789"})
        metrics = status.getresponse().read().decode()
        assert 'touchpoint_edge_reader_state{state="connected"} 1.0' in metrics
        assert 'touchpoint_edge_reader_state{state="disconnected"} 0.0' in metrics
        assert "touchpoint_edge_reads_total 0.0" not in metrics
        assert 'touchpoint_edge_events_recorded_total{type="tag.departed"} 1.0' in metrics
    finally:
        status.close()


def test_stop_ends_open_streams_and_the_server(tmp_path: Path, server: EdgeServer) -> None:
    conn = connect(server)
    conn.request("GET", "/api/stream")
    response = conn.getresponse()
    assert response.readline() == b"retry: 2000\n"
    assert server.app is not None and server.app.extensions[EXTENSION].hub.clients == 1
    rest: list[bytes] = []
    reader = threading.Thread(target=lambda: rest.append(response.read()))
    reader.start()
    server.stop()
    reader.join(10)
    assert not reader.is_alive() and rest == [b"\n"]  # the stream ended cleanly, nothing lost mid-event
    conn.close()
    with pytest.raises(OSError):
        connect(server).request("GET", "/healthz")
