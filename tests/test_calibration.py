"""`touchpoint doctor --calibrate ZONE`: the spread per antenna and the proposed floor, pure and end
to end against simulated readers on pseudo-terminals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from drivers.calibration import Antenna, Calibration, percentile
from drivers.simulator import Simulator
from tests.llrp_peer import LlrpPeer
from touchpoint.cli import main

SHIRT = "3034F4E4E400FA4000000011"
JEANS = "3034F4E4E402EE4000000003"
CABIN_1 = Antenna(1, 1, "cabin-1")
CABIN_2 = Antenna(1, 2, "cabin-2")


def test_the_floor_keeps_all_but_the_weakest_five_percent_less_three_db() -> None:
    calibration = Calibration()
    for rssi in range(-60, -40):  # 20 reads in cabin 1: the 5th percentile is the weakest, -60
        calibration.add(CABIN_1, SHIRT, rssi)
    for rssi in (-75, -70, -66):
        calibration.add(CABIN_2, SHIRT, rssi)
    calibration.add(CABIN_2, "62E3086CED", None)  # no RSSI: nothing to calibrate
    one, two = calibration.spreads()
    assert (one.reads, one.tags, one.lowest, one.p10, one.median, one.highest) == (20, 1, -60, -59, -51, -41)
    assert (two.antenna, two.reads, two.highest) == (CABIN_2, 3, -66)
    proposal = calibration.propose("cabin-1", {CABIN_1: -80, CABIN_2: -80})
    assert proposal is not None and (proposal.min_rssi, proposal.weakest) == (-63, -60)
    assert [s.antenna for s in proposal.admitted_elsewhere] == [CABIN_2]  # -66 passes cabin 2's floor of -80
    calm = calibration.propose("cabin-1", {CABIN_1: -80, CABIN_2: -65})
    assert calm is not None and calm.admitted_elsewhere == ()
    assert calibration.propose("cabin-3", {}) is None


def test_nearest_rank_percentiles() -> None:
    assert [percentile([1, 2, 3, 4], share) for share in (0.0, 0.05, 0.25, 0.5, 1.0)] == [1, 1, 1, 2, 4]


def write_config(tmp_path: Path, readers: list[dict]) -> Path:
    lines = ['[device]\nstore_id = "test-store"\ndevice_id = "mirror-1"', f'[outbox]\npath = "{tmp_path / "edge.db"}"']
    for reader in readers:
        body = "\n".join(
            f"{key} = {json.dumps(value) if not isinstance(value, dict) else inline(value)}"
            for key, value in reader.items()
        )
        lines.append(f"[[readers]]\n{body}")
    path = tmp_path / "edge.toml"
    path.write_text("\n\n".join(lines) + "\n")
    return path


def inline(table: dict) -> str:
    return "{" + ", ".join(f"{key} = {json.dumps(value)}" for key, value in table.items()) + "}"


def test_calibrating_a_cabin_of_a_two_port_module(tmp_path: Path) -> None:
    with Simulator("mercury", rate=50, seed=9) as module:
        module.present(SHIRT, rssi=-50, antenna=1)
        module.present(JEANS, rssi=-55, antenna=1)
        module.present(SHIRT, rssi=-70, antenna=2)  # cabin 2 hears it through the wall
        module.start()
        config = write_config(
            tmp_path, [{"protocol": "mercury", "url": module.path, "zones": {"1": "cabin-1", "2": "cabin-2"}}]
        )
        result = CliRunner().invoke(
            main, ["doctor", "--config", str(config), "--calibrate", "cabin-1", "--seconds", "1.5"]
        )
    assert result.exit_code == 0, result.output
    rows = {
        line.split()[3]: line.split()
        for line in result.output.splitlines()
        if line.startswith("reader 1 port") and len(line.split()) == 11
    }
    assert set(rows) == {"1", "2"}
    reads, tags, low, _, _, high = map(int, rows["1"][5:11])
    assert reads > 50 and tags == 2 and -58 <= low <= -55 and -50 <= high <= -47  # jitter of 3 dB either side
    assert rows["2"][4] == "cabin-2" and int(rows["2"][6]) == 1
    proposed = int(result.output.split("min_rssi = ")[1].split()[0])
    assert -61 <= proposed <= -58  # the weakest 5 % of -55±3 and -50±3, less 3 dB
    assert "reader 1 port 2 (cabin-2) hears these garments at up to" in result.output  # above its default -80


@pytest.mark.parametrize("cabin_1_floor", [-80, -65])
def test_calibrating_with_two_readers_one_of_them_llrp(tmp_path: Path, cabin_1_floor: int) -> None:
    with Simulator("m100", rate=50, seed=10) as serial, LlrpPeer(rate=50) as fixed:
        serial.present(SHIRT, rssi=-74)  # cabin 1 hears cabin 2's garment through the wall
        fixed.present(SHIRT, rssi=-50, antenna=1)
        serial.start()
        config = write_config(
            tmp_path,
            [
                {"protocol": "m100", "url": serial.path, "zone": "cabin-1", "min_rssi": cabin_1_floor},
                {"protocol": "llrp", "url": f"127.0.0.1:{fixed.port}", "zones": {"1": "cabin-2"}},
            ],
        )
        result = CliRunner().invoke(
            main, ["doctor", "--config", str(config), "--calibrate", "cabin-2", "--seconds", "2"]
        )
    assert result.exit_code == 0, result.output
    assert "Proposed for cabin-2: min_rssi = -53 (its weakest 5 % of reads, -50 dBm" in result.output
    warned = "reader 1 (cabin-1) hears these garments at up to" in result.output
    assert warned is (cabin_1_floor == -80)  # -74±3 gets past -80, never past -65


@pytest.mark.parametrize(("zone", "says"), [("cabin-9", "is not a zone"), ("cabin-1", "No antenna of cabin-1 heard")])
def test_nothing_to_calibrate_says_why(tmp_path: Path, zone: str, says: str) -> None:
    with Simulator("m100", rate=50) as silent:
        config = write_config(tmp_path, [{"protocol": "m100", "url": silent.path, "zone": "cabin-1"}])
        result = CliRunner().invoke(main, ["doctor", "--config", str(config), "--calibrate", zone, "--seconds", "0.5"])
    assert result.exit_code == 1 and says in result.output
