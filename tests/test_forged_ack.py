"""Issue 13 against the real ``touchpoint sync`` and ``touchpoint hq --role ingest`` processes on a
private Mosquitto with anonymous access, as the example configs run.

The forged ack: while HQ is down an outsider reads the device's last seq from its retained status
and publishes a retained ``{"upto": N}``; nothing may leave the outbox, and once HQ is back its
signed ack drains it whole. The restarted worker: its stable client id and kept session bring it
the batch the broker queued while it was stopped."""

from __future__ import annotations

import json
from pathlib import Path

from contract import topics
from hq.storage import open_storage
from sync import state
from sync.outbox import Outbox
from tests.acknowledger import ACK_SECRET, ack_key
from tests.conftest import wait_until
from tests.faults import Service
from tests.hq_support import Peer, events, payload
from touchpoint.services import Mosquitto

DEVICE = topics.DeviceTopics("test-store", "mirror-1")
SOURCE = "/stores/test-store/devices/mirror-1"


def test_a_forged_retained_ack_deletes_nothing_and_hqs_own_ack_is_honoured(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    (tmp_path / "edge.toml").write_text(
        '[device]\nstore_id = "test-store"\ndevice_id = "mirror-1"\n'
        f'[outbox]\npath = "{tmp_path / "edge.db"}"\n'
        f'[mqtt]\nurl = "{mosquitto.url}"\nack_timeout_s = 2\nack_key = "{ack_key()}"\n'
    )
    (tmp_path / "hq.toml").write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "hq.db"}"\n[mqtt]\nurl = "{mosquitto.url}"\n'
        f'[hq]\nack_secret = "{ACK_SECRET}"\nclient_id = "hq-attacked"\n'
    )
    hq = Service(["hq", "--role", "ingest", "--config", str(tmp_path / "hq.toml")], tmp_path / "hq.log")
    agent = Service(["sync", "--config", str(tmp_path / "edge.toml")], tmp_path / "agent.log").start()
    outbox = Outbox(tmp_path / "edge.db", SOURCE)
    try:
        outbox.append_many([("session.started", {"session_id": f"s-{n}"}) for n in range(15)])
        with Peer(mosquitto.url, [DEVICE.status], "attacker") as attacker:
            last_seq = 0
            while last_seq < 15:  # what the attacker read: the retained status
                last_seq = json.loads(attacker.next(timeout=30).payload).get("last_seq", 0)
            attacker.send(DEVICE.ack, json.dumps({"upto": last_seq}).encode(), retain=True)
            assert wait_until(lambda: (s := state.read(tmp_path / "edge.db")) is not None and s.refused_acks >= 1)
        assert outbox.stats().depth == 15 and outbox.stats().acked_upto == 0
        hq.start()
        assert wait_until(lambda: outbox.stats().depth == 0, timeout=60), (tmp_path / "agent.log").read_text()
        with open_storage(f"sqlite:///{tmp_path / 'hq.db'}") as storage:
            (row,) = [d for d in storage.devices() if d.device == DEVICE.device]
        assert (row.contiguous_seq, row.stored, row.gaps) == (15, 15, ())
        assert "ack refused (unsigned)" in (tmp_path / "agent.log").read_text()
    finally:
        outbox.close()
        assert agent.stop() == 0
        if hq.process is not None:
            assert hq.stop() == 0


def test_a_restarted_hq_worker_gets_the_batches_the_broker_queued_for_it(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Issue 13, item 8: a stable client id and a kept session, so no edge has to resend. No agent
    runs here: a plain client publishes the batch once, while the only worker is stopped."""
    (tmp_path / "hq.toml").write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "hq.db"}"\n[mqtt]\nurl = "{mosquitto.url}"\n'
        f'[hq]\nack_secret = "{ACK_SECRET}"\nclient_id = "hq-ingest"\n'
    )
    hq = Service(["hq", "--role", "ingest", "--config", str(tmp_path / "hq.toml")], tmp_path / "hq.log").start()
    database = f"sqlite:///{tmp_path / 'hq.db'}"
    with Peer(mosquitto.url, [DEVICE.ack], "device") as device:
        device.send(topics.DeviceTopics("probe", "p").status, b'{"state": "online"}', retain=True)
        assert wait_until(lambda: _devices(database) == {"p"}), (tmp_path / "hq.log").read_text()
        assert hq.stop() == 0
        device.send(DEVICE.events, payload(events(range(1, 6))))
        hq.start()
        try:
            assert device.ack(timeout=30) == 5
            assert _devices(database) == {"p", DEVICE.device}
        finally:
            assert hq.stop() == 0


def _devices(database: str) -> set[str]:
    try:
        with open_storage(database) as storage:
            return {d.device for d in storage.devices()}
    except Exception:  # the worker has not created the database yet
        return set()
