"""Hardware: RFID reader protocols over pyserial, EPC decoding, tag presence, loyalty QR camera.

Explicit re-exports only; see DESIGN.md "RFID readers" for the contract.
"""

from drivers.camera import CameraError, CameraReader, CameraStatus
from drivers.epc import Sgtin, decode_epc, encode_sgtin96, gtin_for_epc
from drivers.presence import PresenceChange, PresenceTracker, PresentTag
from drivers.qr import parse_loyalty_code
from drivers.reader import Reader, ReaderState, ReaderStatus
from drivers.types import TagRead

__all__ = [
    "CameraError",
    "CameraReader",
    "CameraStatus",
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
    "parse_loyalty_code",
]
