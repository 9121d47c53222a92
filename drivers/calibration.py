"""RSSI calibration of a zone: the spread each antenna hears, and a proposed ``min_rssi``. Pure.

Garments put in the zone are read for a while by every antenna of the device. The zone's own
antennas must keep (nearly) all of those reads, so the proposed floor is the weakest 5 % of them
less a 3 dB allowance (bodies and mirrors absorb more than an empty cabin does). The other
antennas' reads of the same garments are what they hear through the walls: a neighbour whose
floor is not above them relies on the margin alone to keep these garments off its mirror.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

KEEP_SHARE = 0.05  # the share of the zone's own reads a floor may cut
ALLOWANCE_DB = 3


@dataclass(frozen=True)
class Antenna:
    """One antenna of the device: its reader (from 1, as in the config), port (None: a reader without) and zone."""

    reader: int
    port: int | None
    zone: str | None

    def label(self) -> str:
        return f"reader {self.reader}" + ("" if self.port is None else f" port {self.port}")


@dataclass(frozen=True)
class Spread:
    """What one antenna heard: reads, distinct tags, and RSSI in dBm (lowest, 10th percentile, median, highest)."""

    antenna: Antenna
    reads: int
    tags: int
    lowest: int
    p10: int
    median: int
    highest: int


@dataclass(frozen=True)
class Proposal:
    """A ``min_rssi`` for the zone, from the weakest of its own reads, and the other zones' antennas
    whose floor lets these garments through (there only the margin keeps them off the mirror)."""

    zone: str
    min_rssi: int
    weakest: int
    admitted_elsewhere: tuple[Spread, ...]


def percentile(values: list[int], share: float) -> int:
    """The nearest-rank percentile of sorted ``values``."""
    return values[max(0, math.ceil(share * len(values)) - 1)]


class Calibration:
    """Collects reads per antenna (``add``), then summarises them (``spreads``) and proposes a floor."""

    def __init__(self) -> None:
        self._rssi: dict[Antenna, list[int]] = defaultdict(list)
        self._tags: dict[Antenna, set[str]] = defaultdict(set)

    def add(self, antenna: Antenna, epc: str, rssi: int | None) -> None:
        """One read; reads without RSSI (125 kHz) have nothing to calibrate and are left out."""
        if rssi is not None:
            self._rssi[antenna].append(rssi)
            self._tags[antenna].add(epc)

    def spreads(self) -> list[Spread]:
        """Per antenna that heard anything, in reader and port order."""
        found = []
        for antenna in sorted(self._rssi, key=lambda a: (a.reader, a.port or 0)):
            values = sorted(self._rssi[antenna])
            found.append(
                Spread(
                    antenna,
                    len(values),
                    len(self._tags[antenna]),
                    values[0],
                    percentile(values, 0.10),
                    percentile(values, 0.50),
                    values[-1],
                )
            )
        return found

    def propose(self, zone: str, floors: dict[Antenna, int]) -> Proposal | None:
        """The floor for ``zone``, given each antenna's configured one; None when its antennas heard nothing."""
        own = sorted(v for antenna, values in self._rssi.items() if antenna.zone == zone for v in values)
        if not own:
            return None
        weakest = percentile(own, KEEP_SHARE)
        elsewhere = tuple(
            s for s in self.spreads() if s.antenna.zone != zone and s.highest >= floors.get(s.antenna, -128)
        )
        return Proposal(zone, max(-128, weakest - ALLOWANCE_DB), weakest, elsewhere)
