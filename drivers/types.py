"""Values the drivers hand to the rest of Touchpoint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TagRead:
    """One tag read reported by a framer.

    ``epc`` is uppercase hex: the EPC for m100, the 10-hex-digit tag id for id12/rdm6300.
    ``rssi`` is in dBm for the UHF readers and None for the 125 kHz ones, which report no signal
    strength. ``antenna`` is the port that heard it on readers with several (Mercury, LLRP), else None.
    """

    epc: str
    rssi: int | None
    antenna: int | None = None
