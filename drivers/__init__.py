"""Hardware: RFID reader protocols over pyserial, EPC decoding and tag presence.

Explicit re-exports only; see DESIGN.md "RFID readers" for the contract.
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
