"""Which zone a tag is in: an arrival filter and one zone per tag, with hysteresis. Pure, time passed in.

UHF tags are read through cabin walls: each antenna also hears the garments next door, on the
return rail and on the shop floor, only weaker. So a read is not a presence:

- a read below its antenna's RSSI floor (``min_rssi``) is dropped before it gets here;
- a tag **arrives** in a zone once it was read there ``min_reads`` times within
  ``arrival_window_s`` and no zone hears it louder right now: a single stray read shows nothing;
- a tag is in **one zone at a time**. It moves from zone A to zone B only after B's smoothed RSSI
  has stayed at least ``margin_db`` above A's for ``hold_s`` (while B keeps qualifying), so a
  garment between two cabins never flickers between two mirrors;
- it **departs** a zone that has not read it for that zone's ``departure_s``; if another zone
  hears it well enough by then, it arrives there at once.

RSSI is smoothed per tag and zone by an exponential moving average over reads. Readers without
RSSI (125 kHz) never move a tag by margin; their tags only arrive and depart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

ARRIVED = "arrived"
DEPARTED = "departed"


@dataclass(frozen=True)
class ZoneRules:
    """When reads in a zone make a presence: ``min_reads`` within ``arrival_window_s``; gone after ``departure_s``."""

    min_reads: int = 1
    arrival_window_s: float = 1.0
    departure_s: float = 3.0

    def __post_init__(self) -> None:
        if self.min_reads < 1 or self.arrival_window_s <= 0 or self.departure_s <= 0:
            raise ValueError("min_reads must be >= 1, arrival_window_s and departure_s > 0")


@dataclass(frozen=True)
class Hysteresis:
    """How much louder (``margin_db``) and for how long (``hold_s``) another zone must hear a tag to take it."""

    margin_db: float = 6.0
    hold_s: float = 2.0

    def __post_init__(self) -> None:
        if self.margin_db < 0 or self.hold_s < 0:
            raise ValueError("margin_db and hold_s must be >= 0")


@dataclass(frozen=True)
class Change:
    """A tag arrived in or departed from a zone; ``rssi`` is smoothed, ``last_seen`` its last read there."""

    kind: str
    zone: str
    epc: str
    rssi: float | None
    since: float
    last_seen: float


class _Heard:
    """One tag as one zone hears it: smoothed RSSI, recent read times, and since when it beats the tag's zone."""

    __slots__ = ("rssi", "times", "last_seen", "better_since")

    def __init__(self) -> None:
        self.rssi: float | None = None
        self.times: deque[float] = deque()
        self.last_seen = float("-inf")
        self.better_since: float | None = None


class _Tag:
    __slots__ = ("zone", "since", "heard")

    def __init__(self) -> None:
        self.zone: str | None = None
        self.since = 0.0
        self.heard: dict[str, _Heard] = {}


class ZoneAssigner:
    """The zone of every tag from raw reads per zone; returns arrivals and departures as :class:`Change`.

    ``rules`` gives per-zone rules (others get ``default``). The caller runs ``expire(now)``
    regularly: departures, and moves whose hold time passed without a read, happen there.
    """

    def __init__(
        self,
        rules: Mapping[str, ZoneRules] | None = None,
        hysteresis: Hysteresis = Hysteresis(),
        default: ZoneRules = ZoneRules(),
        rssi_alpha: float = 0.3,
    ) -> None:
        if not 0 < rssi_alpha <= 1:
            raise ValueError("rssi_alpha must be in (0, 1]")
        self.rules = dict(rules or {})
        self.hysteresis = hysteresis
        self.default = default
        self.rssi_alpha = rssi_alpha
        self._tags: dict[str, _Tag] = {}
        self._zones: dict[str, dict[str, _Tag]] = {}  # zone -> epc -> tag, in arrival order

    def rules_for(self, zone: str) -> ZoneRules:
        return self.rules.get(zone, self.default)

    def read(self, zone: str, epc: str, rssi: int | None, now: float) -> list[Change]:
        """Record one read (already past its antenna's floor); returns the changes it caused."""
        tag = self._tags.get(epc)
        if tag is None:
            tag = self._tags[epc] = _Tag()
        heard = tag.heard.get(zone)
        if heard is None or (zone != tag.zone and now - heard.last_seen >= self.rules_for(zone).departure_s):
            heard = tag.heard[zone] = _Heard()
        if rssi is not None:
            heard.rssi = rssi if heard.rssi is None else heard.rssi + self.rssi_alpha * (rssi - heard.rssi)
        heard.times.append(now)
        heard.last_seen = max(heard.last_seen, now)
        return self._settle(epc, tag, now)

    def expire(self, now: float) -> list[Change]:
        """Departures of tags their zone has not read for ``departure_s``, then arrivals and moves now due."""
        changes: list[Change] = []
        for epc, tag in list(self._tags.items()):
            for zone, heard in list(tag.heard.items()):
                if now - heard.last_seen >= self.rules_for(zone).departure_s:
                    del tag.heard[zone]
                    if zone == tag.zone:
                        changes.append(self._leave(epc, tag, heard))
            changes += self._settle(epc, tag, now)
        return changes

    def remove_zone(self, zone: str, now: float) -> list[Change]:
        """Forget everything a zone heard (its reader stopped): its tags depart, and may arrive elsewhere."""
        changes: list[Change] = []
        for epc, tag in list(self._tags.items()):
            heard = tag.heard.pop(zone, None)
            if heard is not None and tag.zone == zone:
                changes.append(self._leave(epc, tag, heard))
            changes += self._settle(epc, tag, now)
        return changes

    def zone_of(self, epc: str) -> str | None:
        tag = self._tags.get(epc)
        return tag.zone if tag else None

    def present(self) -> dict[str, list[tuple[str, float | None, float, float]]]:
        """Zone -> (epc, smoothed RSSI, since, last seen) in arrival order; empty zones left out."""
        return {
            zone: [(epc, tag.heard[zone].rssi, tag.since, tag.heard[zone].last_seen) for epc, tag in tags.items()]
            for zone, tags in self._zones.items()
            if tags
        }

    def _qualifies(self, zone: str, heard: _Heard, now: float) -> bool:
        rules = self.rules_for(zone)
        while heard.times and heard.times[0] <= now - rules.arrival_window_s:
            heard.times.popleft()
        return len(heard.times) >= rules.min_reads

    def _settle(self, epc: str, tag: _Tag, now: float) -> list[Change]:
        qualified = {zone for zone, heard in tag.heard.items() if self._qualifies(zone, heard, now)}
        if tag.zone is None:
            changes = self._arrive_at_loudest(epc, tag, qualified, now)
        else:
            changes = self._move_if_held(epc, tag, qualified, now)
        if tag.zone is None and not tag.heard:
            del self._tags[epc]
        return changes

    def _arrive_at_loudest(self, epc: str, tag: _Tag, qualified: set[str], now: float) -> list[Change]:
        """Arrive where the tag qualifies, unless a zone that heard it within its window hears it louder."""
        recent = [zone for zone, heard in tag.heard.items() if heard.times]
        if not qualified or not recent:
            return []
        loudest = max(recent, key=lambda zone: (_loudness(tag.heard[zone]), zone in qualified))
        if loudest not in qualified:
            return []  # the louder zone still collects its reads; a stray one ages out of its window
        return [self._enter(epc, tag, loudest, now)]

    def _move_if_held(self, epc: str, tag: _Tag, qualified: set[str], now: float) -> list[Change]:
        assert tag.zone is not None
        current = tag.heard[tag.zone].rssi
        ready = []
        for zone, heard in tag.heard.items():
            if zone == tag.zone:
                continue
            better = (
                zone in qualified
                and current is not None
                and heard.rssi is not None
                and heard.rssi >= current + self.hysteresis.margin_db
            )
            if not better:
                heard.better_since = None
                continue
            if heard.better_since is None:
                heard.better_since = now
            if now - heard.better_since >= self.hysteresis.hold_s:
                ready.append(zone)
        if not ready:
            return []
        target = max(ready, key=lambda zone: _loudness(tag.heard[zone]))
        left = self._leave(epc, tag, tag.heard[tag.zone])
        return [left, self._enter(epc, tag, target, now)]

    def _enter(self, epc: str, tag: _Tag, zone: str, now: float) -> Change:
        tag.zone, tag.since = zone, now
        for heard in tag.heard.values():
            heard.better_since = None
        self._zones.setdefault(zone, {})[epc] = tag
        heard = tag.heard[zone]
        return Change(ARRIVED, zone, epc, heard.rssi, now, heard.last_seen)

    def _leave(self, epc: str, tag: _Tag, heard: _Heard) -> Change:
        zone = tag.zone
        assert zone is not None
        tags = self._zones[zone]
        del tags[epc]
        if not tags:
            del self._zones[zone]
        tag.zone = None
        return Change(DEPARTED, zone, epc, heard.rssi, tag.since, heard.last_seen)


def _loudness(heard: _Heard) -> float:
    return float("-inf") if heard.rssi is None else heard.rssi
