"""The MQTT topics and small payloads of docs/architecture.md, shared by the edge and HQ.

Topic names are built and parsed only here, and so is the ``status`` payload the protocol adds
around the events; HQ's signed ``ack`` is ``contract.acks``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from common.errors import TouchpointError

ROOT = "touchpoint/v1"
DOWNLINK_KINDS = ("catalog", "recommendations", "config")
_DEVICE_TOPIC = re.compile(
    r"touchpoint/v1/(?P<store>[a-z0-9-]{1,64})/(?P<device>[a-z0-9-]{1,64})/(?P<kind>events|ack|status|config)"
)
_STORE_TOPIC = re.compile(r"touchpoint/v1/(?P<store>[a-z0-9-]{1,64})/(?P<kind>catalog|recommendations)")


class PayloadError(TouchpointError, ValueError):
    """An ``ack`` or ``status`` payload is not what the contract says."""


@dataclass(frozen=True)
class Topic:
    """A parsed topic: ``device`` is None for the store-wide catalog and recommendations."""

    store: str
    device: str | None
    kind: str  # events | ack | status | catalog | recommendations | config


@dataclass(frozen=True)
class DeviceTopics:
    """Every topic one device publishes or subscribes to."""

    store: str
    device: str

    @property
    def events(self) -> str:
        return f"{ROOT}/{self.store}/{self.device}/events"

    @property
    def ack(self) -> str:
        return f"{ROOT}/{self.store}/{self.device}/ack"

    @property
    def status(self) -> str:
        return f"{ROOT}/{self.store}/{self.device}/status"

    def downlink(self, kind: str) -> str:
        """``catalog`` and ``recommendations`` are per store, ``config`` per device."""
        if kind == "config":
            return f"{ROOT}/{self.store}/{self.device}/config"
        return f"{ROOT}/{self.store}/{kind}"

    @property
    def client_id(self) -> str:
        return f"{self.store}-{self.device}"


def parse(topic: str) -> Topic | None:
    """The parts of a Touchpoint topic, or None when ``topic`` is not one."""
    match = _DEVICE_TOPIC.fullmatch(topic)
    if match:
        return Topic(match["store"], match["device"], match["kind"])
    match = _STORE_TOPIC.fullmatch(topic)
    if match:
        return Topic(match["store"], None, match["kind"])
    return None


@dataclass(frozen=True)
class Status:
    """The retained status message a device publishes about itself."""

    state: str  # online | offline
    time: str  # RFC 3339
    backlog: int
    oldest_age_s: float
    last_seq: int
    acked_upto: int
    dropped: int
    unrecoverable: list[list[int]]  # [lo, hi] seqs HQ lacks that this device no longer holds

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


OFFLINE_WILL = json.dumps({"state": "offline"}).encode()


def decode_status(payload: bytes) -> dict[str, Any]:
    """A status document (the will carries only ``state``); raises PayloadError if malformed."""
    document = json_object(payload, "status")
    if document.get("state") not in ("online", "offline"):
        raise PayloadError("status: 'state' must be 'online' or 'offline'")
    return document


def json_object(payload: bytes, what: str) -> dict[str, Any]:
    """``payload`` as a JSON object; raises PayloadError naming ``what`` otherwise."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise PayloadError(f"{what}: not JSON") from None
    if not isinstance(document, dict):
        raise PayloadError(f"{what}: must be a JSON object")
    return document
