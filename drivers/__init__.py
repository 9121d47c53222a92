"""Hardware: RFID reader protocols over pyserial, EPC decoding, tag presence, loyalty QR camera.

Explicit re-exports only; see docs/architecture.md for the contract. The camera
(``drivers.camera``) is imported from its own module, so a device without one never loads
OpenCV (about 30 MB and 0.2 s on a Pi).
"""

from drivers.epc import Sgtin, decode_epc, encode_sgtin96, gtin_for_epc
from drivers.presence import PresenceChange, PresenceTracker, PresentTag
from drivers.reader import Reader, ReaderState, ReaderStatus
from drivers.types import TagRead

__all__ = [
    "PresenceChange",
    "PresenceTracker",
    "PresentTag",
    "Reader",
    "ReaderState",
    "ReaderStatus",
    "Sgtin",
    "TagRead",
    "decode_epc",
    "encode_sgtin96",
    "gtin_for_epc",
]
