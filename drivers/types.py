"""Values the drivers hand to the rest of Touchpoint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TagRead:
    """One tag read reported by a framer.

    ``epc`` is uppercase hex: the EPC for m100, the 10-hex-digit tag id for id12/rdm6300.
    ``rssi`` is in dBm for m100 and None for the 125 kHz readers, which report no signal strength.
    """

    epc: str
    rssi: int | None
