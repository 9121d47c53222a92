"""Tag presence per zone, from raw reads: pure logic, the caller passes the time in.

:mod:`drivers.zones` decides which zone a tag is in (arrival filter, one zone per tag, hysteresis);
this module adds what the rest of Touchpoint records about a stay: the GTIN, the rounded smoothed
RSSI, the arrival time and the dwell. Readers repeat reads many times a second while a tag is in
the field; only arrivals and departures leave this module. The caller runs ``expire(now)``
regularly (the kiosk does, a few times per ``departure_s``); a read that comes before that still
counts as the same stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from drivers.epc import gtin_for_epc
from drivers.zones import ARRIVED, DEPARTED, Change, Hysteresis, ZoneAssigner, ZoneRules

__all__ = ["ARRIVED", "DEPARTED", "PresenceChange", "PresenceTracker", "PresentTag"]


@dataclass(frozen=True)
class PresenceChange:
    """A tag arrived in or departed from a zone.

    ``rssi`` is the smoothed RSSI (None for readers without one); ``since`` the arrival time in
    epoch seconds; ``dwell_ms`` the time from arrival to the last read (0 for arrivals).
    """

    kind: str
    zone: str
    epc: str
    gtin: str | None
    rssi: int | None
    since: float
    dwell_ms: int


@dataclass(frozen=True)
class PresentTag:
    """A tag present now, as ``PresenceTracker.present`` lists it."""

    epc: str
    gtin: str | None
    rssi: int | None
    since: float
    last_seen: float


def _rounded(rssi: float | None) -> int | None:
    return None if rssi is None else round(rssi)


class PresenceTracker:
    """Arrivals and departures of tags per zone; a tag is in one zone at a time.

    Without ``rules`` every zone uses ``departure_s`` and arrives on the first read, as a single
    reader with no filter always did.
    """

    def __init__(
        self,
        departure_s: float = 3.0,
        rssi_alpha: float = 0.3,
        *,
        rules: Mapping[str, ZoneRules] | None = None,
        hysteresis: Hysteresis | None = None,
    ) -> None:
        if departure_s <= 0:
            raise ValueError("departure_s must be > 0")
        self.departure_s = departure_s
        self._zones = ZoneAssigner(rules, hysteresis or Hysteresis(), ZoneRules(departure_s=departure_s), rssi_alpha)
        self._gtins: dict[str, str | None] = {}

    def read(self, zone: str, epc: str, rssi: int | None, now: float) -> list[PresenceChange]:
        """Record one read; returns the arrival it completed, or a departure and an arrival for a move."""
        return self._convert(self._zones.read(zone, epc, rssi, now))

    def expire(self, now: float) -> list[PresenceChange]:
        """Departures of tags unread for their zone's ``departure_s``, and the arrivals and moves due now."""
        return self._convert(self._zones.expire(now))

    def remove_zone(self, zone: str, now: float) -> list[PresenceChange]:
        """Depart every tag of a zone, e.g. when its reader stopped; dwell ends at each tag's last read."""
        return self._convert(self._zones.remove_zone(zone, now))

    def zone_of(self, epc: str) -> str | None:
        """The zone a tag is in now, or None."""
        return self._zones.zone_of(epc)

    def present(self) -> dict[str, list[PresentTag]]:
        """Zone -> tags present now in arrival order; zones without tags are left out."""
        return {
            zone: [
                PresentTag(epc, self._gtin(epc), _rounded(rssi), since, last_seen)
                for epc, rssi, since, last_seen in tags
            ]
            for zone, tags in self._zones.present().items()
        }

    def _gtin(self, epc: str) -> str | None:
        if epc not in self._gtins:
            self._gtins[epc] = gtin_for_epc(epc)
        return self._gtins[epc]

    def _convert(self, changes: list[Change]) -> list[PresenceChange]:
        converted = []
        for change in changes:
            # a tag that arrives when its old zone lets it go may not have been read since: no negative dwell
            dwell_ms = 0 if change.kind == ARRIVED else max(0, round((change.last_seen - change.since) * 1000))
            gtin = self._gtin(change.epc)
            if change.kind == DEPARTED and self._zones.zone_of(change.epc) is None:
                self._gtins.pop(change.epc, None)  # bounded: only tags present or moving are cached
            converted.append(
                PresenceChange(
                    change.kind, change.zone, change.epc, gtin, _rounded(change.rssi), change.since, dwell_ms
                )
            )
        return converted
