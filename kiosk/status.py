"""``/api/status``: what staff and monitoring see of a running edge, as plain JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from drivers.reader import ReaderStatus
from sync import state as sync_state

if TYPE_CHECKING:
    from kiosk.edge import Edge


def status(edge: Edge) -> dict[str, Any]:
    """Readers, camera, outbox, catalogue, stream, sessions and the sync agent's last word."""
    readers = [_reader_json(reader.status()) for reader in edge.readers]
    camera = edge.camera.status() if edge.camera else None
    stats = edge.outbox.stats()
    synced = sync_state.read(edge.config.outbox.path)  # written by the separate sync agent
    return {
        "device": {
            "store_id": edge.config.device.store_id,
            "device_id": edge.config.device.device_id,
            "role": edge.role,
            "zone": edge.zone,
            "zones": edge.zones,
        },
        "reader": readers[0] if readers else None,
        "readers": readers,
        "ignored_reads": dict(edge.ignored),
        "camera": None
        if camera is None
        else {
            "state": camera.state.value,
            "frames_total": camera.frames_total,
            "codes_total": camera.codes_total,
            "reconnects": camera.reconnects,
            "last_error": camera.last_error,
        },
        "outbox": {
            "depth": stats.depth,
            "oldest_age_s": round(stats.oldest_age_s, 3),
            "last_seq": stats.last_seq,
            "acked_upto": stats.acked_upto,
            "dropped": stats.dropped,
        },
        "catalog": {
            "version": edge.catalog.version,
            "origin": edge.catalog.origin,
            "products": len(edge.catalog.products),
        },
        "stream": {"clients": edge.hub.clients},
        "session": any(sessions.current() is not None for sessions in edge.sessions.values()),
        "sync": None if synced is None else asdict(synced),
    }


def _reader_json(reader: ReaderStatus) -> dict[str, Any]:
    return {
        "name": reader.name,
        "protocol": reader.protocol,
        "url": reader.url,
        "state": reader.state.value,
        "frames_total": reader.frames_total,
        "reads_total": reader.reads_total,
        "frames_per_s": reader.frames_per_s,
        "bad_frames": reader.bad_frames,
        "reconnects": reader.reconnects,
        "last_error": reader.last_error,
    }
