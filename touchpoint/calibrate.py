"""``touchpoint doctor --calibrate ZONE``: read for a while with every configured reader, show what each
antenna heard, and propose a ``min_rssi`` for the zone (the arithmetic is :mod:`drivers.calibration`).

Stop ``touchpoint edge`` first: a serial reader has one owner, and an LLRP reader takes one client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from common import config as configuration
from drivers.calibration import Antenna, Calibration, Proposal, Spread
from drivers.readers import open_reader
from drivers.types import TagRead


def antennas(config: configuration.EdgeConfig) -> dict[Antenna, int]:
    """Every antenna the config maps to a zone, with its configured floor."""
    found = {}
    for number, reader in enumerate(config.all_readers, 1):
        ports: list[int | None] = [int(port) for port in reader.zones] if reader.zones else [None]
        for port in ports:
            found[Antenna(number, port, reader.port_zone(port))] = reader.floor(port)
    return found


def record(
    config: configuration.EdgeConfig, seconds: float, sleep: Callable[[float], None] = time.sleep
) -> Calibration:
    """Run every configured reader for ``seconds`` and collect what each antenna hears."""
    calibration = Calibration()
    lock = threading.Lock()

    def collector(number: int, reader: configuration.ReaderSection) -> Callable[[TagRead], None]:
        def on_read(read: TagRead) -> None:
            port = read.antenna if reader.zones else None
            with lock:
                calibration.add(Antenna(number, port, reader.port_zone(port)), read.epc, read.rssi)

        return on_read

    readers = [
        open_reader(
            section.protocol,
            section.url,
            collector(number, section),
            name=f"calibrate-{number}",
            baudrate=section.baudrate,
            region=section.region,
        )
        for number, section in enumerate(config.all_readers, 1)
    ]
    for reader in readers:
        reader.start()
    try:
        sleep(seconds)
    finally:
        for reader in readers:
            reader.stop()
    return calibration


def render(zone: str, seconds: float, spreads: list[Spread], proposal: Proposal | None) -> str:
    """The table and the proposal, in plain sentences."""
    lines = [f"Calibrating {zone}: {seconds:g} s of reads by every antenna.", ""]
    lines.append(
        f"{'antenna':<18} {'zone':<14} {'reads':>6} {'tags':>5} {'min':>5} {'p10':>5} {'median':>7} {'max':>5}"
    )
    for s in spreads:
        lines.append(
            f"{s.antenna.label():<18} {s.antenna.zone or '(unmapped)':<14} {s.reads:>6} {s.tags:>5} "
            f"{s.lowest:>5} {s.p10:>5} {s.median:>7} {s.highest:>5}"
        )
    lines.append("")
    if proposal is None:
        lines.append(
            f"No antenna of {zone} heard a tag with RSSI: put the calibration garments in {zone}, check "
            "that a reader covers it (zone or zones in the config) and that `touchpoint edge` is stopped."
        )
        return "\n".join(lines)
    lines.append(
        f"Proposed for {zone}: min_rssi = {proposal.min_rssi} (its weakest 5 % of reads, {proposal.weakest} dBm, "
        "less 3 dB). Set it on the reader that covers it, or as port_min_rssi for its port."
    )
    for s in proposal.admitted_elsewhere:
        lines.append(
            f"{s.antenna.label()} ({s.antenna.zone}) hears these garments at up to {s.highest} dBm, not below "
            f"its min_rssi: only [presence] margin_db keeps them off its mirror; calibrate {s.antenna.zone} too."
        )
    return "\n".join(lines)


def run(config_path: str | None, zone: str, seconds: float) -> tuple[str, int]:
    """The report and the exit code: 0 with a proposal, 1 without (or with a bad config or zone)."""
    try:
        config = configuration.load_edge(config_path)
    except configuration.ConfigError as error:
        return f"{error}. Fix the file (or the TOUCHPOINT_* variable) and run doctor again.", 1
    if zone not in config.zones or not config.all_readers:
        return f"{zone!r} is not a zone of this device's readers; its zones: {', '.join(config.zones)}.", 1
    calibration = record(config, seconds)
    proposal = calibration.propose(zone, antennas(config))
    return render(zone, seconds, calibration.spreads(), proposal), 0 if proposal else 1
