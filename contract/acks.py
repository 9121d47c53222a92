"""HQ's signed acks (docs/architecture.md, MQTT): what an ack says, how HQ signs it, how a device checks it.

An ack is ``{"upto": N, "ranges": [[lo, hi], ...], "at_us": T, "sig": "<hex>"}``, retained on the
device's ``ack`` topic. ``upto`` is HQ's contiguous seq, ``ranges`` the seqs HQ holds above it
(at most :data:`MAX_RANGES`, lowest first), ``at_us`` HQ's clock in microseconds when it committed
them, and ``sig`` HMAC-SHA256 over device, upto, ranges and at_us with the device's key.

Each device's key is derived from one HQ secret (``[hq] ack_secret``): HMAC-SHA256(secret,
"STORE/DEVICE"), as 64 hex digits; ``touchpoint hq device-key`` and ``deploy/mosquitto/add-device``
print it. So anyone who can publish to the topic but lacks the key cannot make a device delete
events, and one device's key signs nothing for another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

from contract.topics import PayloadError, json_object

MAX_RANGES = 32  # ranges an ack carries; beyond them a device only waits longer for its gaps to close
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
Range = tuple[int, int]


class AckRefused(PayloadError):
    """An ack that is malformed, unsigned or signed with no key this device holds."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason  # malformed | unsigned | bad-signature: the label it is counted under
        super().__init__(f"ack refused ({reason}): {detail}"[:300])


def device_key(secret: str, store: str, device: str) -> str:
    """The device's ack key: HMAC-SHA256(secret, "STORE/DEVICE") as 64 hex digits."""
    return hmac.new(secret.encode(), f"{store}/{device}".encode(), hashlib.sha256).hexdigest()


def is_key(value: str) -> bool:
    """Whether ``value`` looks like a key :func:`device_key` makes."""
    return bool(_HEX_KEY.fullmatch(value))


@dataclass(frozen=True)
class Ack:
    """What HQ acknowledges: everything ``<= upto`` and every seq in ``ranges``, as of ``at_us``."""

    upto: int
    at_us: int
    ranges: tuple[Range, ...] = ()

    def signature(self, key: str, store: str, device: str) -> str:
        ranges = ",".join(f"{lo}-{hi}" for lo, hi in self.ranges)
        message = f"touchpoint-ack-v1\n{store}/{device}\n{self.upto}\n{ranges}\n{self.at_us}".encode()
        return hmac.new(bytes.fromhex(key), message, hashlib.sha256).hexdigest()

    def encode(self, key: str, store: str, device: str) -> bytes:
        """The signed payload HQ publishes."""
        document = {
            "upto": self.upto,
            "ranges": [list(r) for r in self.ranges],
            "at_us": self.at_us,
            "sig": self.signature(key, store, device),
        }
        return json.dumps(document, separators=(",", ":")).encode()


def decode(payload: bytes, keys: Sequence[str], store: str, device: str) -> Ack:
    """The ack, if one of ``keys`` signed it for this device; raises AckRefused otherwise.
    Signatures are compared in constant time."""
    try:
        document = json_object(payload, "ack")
    except PayloadError as error:
        raise AckRefused("malformed", str(error)) from None
    upto, at_us, ranges, sig = (document.get(k) for k in ("upto", "at_us", "ranges", "sig"))
    if sig is None:
        raise AckRefused("unsigned", f"no 'sig' in {sorted(document)}")
    if not _whole(upto) or not _whole(at_us) or not isinstance(sig, str):
        raise AckRefused("malformed", "'upto' and 'at_us' must be whole numbers >= 0, 'sig' a string")
    ack = Ack(upto, at_us, _ranges(ranges, upto))
    if not any(hmac.compare_digest(ack.signature(key, store, device), sig) for key in keys):
        raise AckRefused("bad-signature", f"upto {upto} is not signed with this device's key")
    return ack


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _ranges(value: object, upto: int) -> tuple[Range, ...]:
    """Sorted, disjoint ranges above ``upto``; raises AckRefused for anything else."""
    if not isinstance(value, list) or len(value) > MAX_RANGES:
        raise AckRefused("malformed", f"'ranges' must be a list of at most {MAX_RANGES} [lo, hi] pairs")
    ranges: list[Range] = []
    floor = upto + 1
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and all(_whole(n) for n in pair)):
            raise AckRefused("malformed", "'ranges' must hold [lo, hi] pairs of whole numbers")
        lo, hi = pair
        if not floor < lo <= hi:
            raise AckRefused("malformed", "'ranges' must be sorted, disjoint and above 'upto' with a gap")
        ranges.append((lo, hi))
        floor = hi + 1
    return tuple(ranges)
