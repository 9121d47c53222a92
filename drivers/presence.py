"""Tag presence per zone, from raw reads: pure logic, the caller passes the time in.

A tag **arrives** on its first read in a zone and **departs** once it has gone unread for
``departure_s``. Readers repeat reads many times a second while a tag is in the field, so repeated
reads only refresh last-seen and the smoothed RSSI; only arrivals and departures leave this module.
The caller runs ``expire(now)`` regularly (the kiosk does, a few times per ``departure_s``); a read
that comes before that still counts as the same stay.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.epc import gtin_for_epc

ARRIVED = "arrived"
DEPARTED = "departed"


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


class _Stay:
    """Mutable bookkeeping of one tag in one zone; never leaves the tracker."""

    __slots__ = ("gtin", "rssi", "since", "last_seen")

    def __init__(self, gtin: str | None, rssi: float | None, now: float) -> None:
        self.gtin = gtin
        self.rssi = rssi
        self.since = now
        self.last_seen = now

    def rounded_rssi(self) -> int | None:
        return None if self.rssi is None else round(self.rssi)


class PresenceTracker:
    """Arrivals and departures of tags per zone, with RSSI smoothed by an exponential moving average."""

    def __init__(self, departure_s: float = 3.0, rssi_alpha: float = 0.3) -> None:
        if departure_s <= 0 or not 0 < rssi_alpha <= 1:
            raise ValueError("departure_s must be > 0 and rssi_alpha in (0, 1]")
        self.departure_s = departure_s
        self.rssi_alpha = rssi_alpha
        self._zones: dict[str, dict[str, _Stay]] = {}

    def read(self, zone: str, epc: str, rssi: int | None, now: float) -> PresenceChange | None:
        """Record one read; returns an "arrived" change on a tag's first read, else None."""
        stays = self._zones.setdefault(zone, {})
        stay = stays.get(epc)
        if stay is None:
            stay = stays[epc] = _Stay(gtin_for_epc(epc), rssi, now)
            return PresenceChange(ARRIVED, zone, epc, stay.gtin, rssi, now, 0)
        stay.last_seen = max(stay.last_seen, now)
        if rssi is not None:
            previous = rssi if stay.rssi is None else stay.rssi
            stay.rssi = previous + self.rssi_alpha * (rssi - previous)
        return None

    def expire(self, now: float) -> list[PresenceChange]:
        """ "departed" changes for every tag unread for ``departure_s``, oldest arrival first."""
        changes = []
        for zone in list(self._zones):
            gone = [epc for epc, stay in self._zones[zone].items() if now - stay.last_seen >= self.departure_s]
            changes += self._depart(zone, gone)
        return changes

    def remove_zone(self, zone: str, now: float) -> list[PresenceChange]:
        """Depart every tag of a zone, e.g. when its reader stopped.

        ``now`` is accepted to match ``expire``; dwell still ends at each tag's last read.
        """
        return self._depart(zone, list(self._zones.get(zone, {})))

    def present(self) -> dict[str, list[PresentTag]]:
        """Zone -> tags present now in arrival order; zones without tags are left out."""
        return {
            zone: [
                PresentTag(epc, stay.gtin, stay.rounded_rssi(), stay.since, stay.last_seen)
                for epc, stay in stays.items()
            ]
            for zone, stays in self._zones.items()
            if stays
        }

    def _depart(self, zone: str, epcs: list[str]) -> list[PresenceChange]:
        stays = self._zones.get(zone, {})
        changes = []
        for epc in epcs:
            stay = stays.pop(epc)
            dwell_ms = round((stay.last_seen - stay.since) * 1000)
            changes.append(PresenceChange(DEPARTED, zone, epc, stay.gtin, stay.rounded_rssi(), stay.since, dwell_ms))
        if not stays:
            self._zones.pop(zone, None)
        return changes
