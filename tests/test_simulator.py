"""The simulated reader: its frames parsed back by the framers, its noise, scenarios and the CLI."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import serial

from drivers import decode_epc
from drivers.errors import FrameError, ReaderError
from drivers.framing import make_framer
from drivers.scenario import ScenarioError, Step, catalogue_tags, due, fitting_room, load, parse
from drivers.simulator import NOISE_KINDS, Simulator, burst, damage, encode_read
from drivers.types import TagRead

EPC_A = "3074257BF7194E4000001A85"
EPC_B = "30751FEB705C5904E3D50D70"
CATALOGUE = Path(__file__).parent.parent / "contract" / "sample" / "catalog.json"


def read_back(sim: Simulator, ticks: int) -> tuple[list[TagRead], object]:
    """Open the pty like a reader would, let the simulator tick, and frame what arrives."""
    framer = make_framer(sim.protocol)
    reads: list[TagRead] = []
    with serial.serial_for_url(sim.path, timeout=0.05) as port:
        for _ in range(ticks):
            sim.tick()
        while data := port.read(port.in_waiting or 1):
            reads += framer.feed(data)
    return reads + framer.idle(), framer


@pytest.mark.parametrize(
    "protocol, tags",
    [("m100", [EPC_A, EPC_B]), ("mercury", [EPC_A, EPC_B]), ("id12", ["62E3086CED"]), ("rdm6300", ["0011223344"])],
)
def test_simulator_frames_parse_back(protocol: str, tags: list[str]) -> None:
    with Simulator(protocol, seed=1) as sim:
        for tag in tags:
            sim.present(tag, rssi=-55)
        reads, framer = read_back(sim, ticks=20)
    assert [r.epc for r in reads] == tags * 20
    assert framer.bad_frames == 0  # type: ignore[attr-defined]
    if protocol in ("m100", "mercury"):
        assert {r.rssi for r in reads} <= set(range(-58, -51))
    else:
        assert {r.rssi for r in reads} == {None}


def test_noise_damages_frames_but_every_intact_one_is_read() -> None:
    with Simulator("m100", noise=0.5, seed=3) as sim:
        sim.present(EPC_A)
        reads, framer = read_back(sim, ticks=100)
    assert {r.epc for r in reads} == {EPC_A}
    assert 30 <= len(reads) <= 85 and framer.bad_frames >= 10  # type: ignore[attr-defined]


def test_remove_and_clear_take_tags_out_of_the_field() -> None:
    with Simulator("m100", seed=1) as sim:
        sim.present(EPC_A)
        sim.present(EPC_B.lower(), rssi=-70)
        sim.remove(EPC_A.lower())
        assert sim.tags == {EPC_B: -70}
        reads, _ = read_back(sim, ticks=3)
        sim.clear()
        assert sim.tags == {}
    assert [r.epc for r in reads] == [EPC_B] * 3


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_each_kind_of_damage_breaks_the_frame(kind: str) -> None:
    class Pick(random.Random):
        def choice(self, seq):  # type: ignore[no-untyped-def, override]
            return kind if seq is NOISE_KINDS else super().choice(seq)

    for protocol, tag in [("m100", EPC_A), ("mercury", EPC_A), ("rdm6300", "62E3086CED")]:
        frame = encode_read(protocol, tag, -50)
        damaged = damage(frame, protocol, Pick(5))
        framer = make_framer(protocol)
        reads = framer.feed(damaged) + framer.idle()
        if kind == "garbage":
            assert damaged.startswith(frame) and len(damaged) > len(frame) and [r.epc for r in reads] == [tag]
        else:
            assert damaged != frame and reads == [] and framer.bad_frames >= 1


def test_burst_is_one_read_per_tag() -> None:
    data = burst("rdm6300", {("62E3086CED", 1): -50, ("0011223344", 1): -50}, 0.0, random.Random(1))
    assert make_framer("rdm6300").feed(data) == [TagRead("62E3086CED", None), TagRead("0011223344", None)]


@pytest.mark.parametrize(
    "protocol, tag, antenna",
    [("m100", "XYZ", 1), ("m100", "ABC", 1), ("rdm6300", EPC_A, 1), ("id12", "62E3", 1), ("m100", EPC_A, 2)]
    + [("mercury", EPC_A, 17), ("mercury", "XYZ", 1)],
)
def test_tags_a_protocol_cannot_send_are_refused(protocol: str, tag: str, antenna: int) -> None:
    with Simulator(protocol) as sim, pytest.raises(FrameError):
        sim.present(tag, antenna=antenna)


def test_a_mercury_module_hears_a_tag_on_each_port_and_keeps_alive() -> None:
    with Simulator("mercury", rate=10, seed=2) as sim:
        sim.present(EPC_A, rssi=-45, antenna=1)
        sim.present(EPC_A, rssi=-72, antenna=2)
        sim.present(EPC_B, rssi=-60, antenna=2)
        assert sim.tags == {EPC_A: -45, EPC_B: -60}
        reads, framer = read_back(sim, ticks=20)
        sim.remove(EPC_A, antenna=2)
        assert sim.field == {(EPC_A, 1): -45, (EPC_B, 2): -60}
    by_port = {(r.epc, r.antenna) for r in reads}
    assert by_port == {(EPC_A, 1), (EPC_A, 2), (EPC_B, 2)} and len(reads) == 60
    assert all(-75 <= r.rssi <= -69 for r in reads if (r.epc, r.antenna) == (EPC_A, 2))  # type: ignore[operator]
    assert framer.frames == 60 + 2  # type: ignore[attr-defined]  # and a keep-alive each second


@pytest.mark.parametrize("kwargs", [{"protocol": "wiegand"}, {"rate": 0}, {"noise": 1.5}])
def test_bad_simulator_parameters(kwargs: dict) -> None:
    with pytest.raises(ReaderError):
        Simulator(**kwargs)


def test_scenario_file_format(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(
        json.dumps(
            [
                {"at": 10, "remove": [EPC_A.lower()]},
                {"at": 0, "present": [EPC_A, {"epc": EPC_B, "rssi": -62}]},
            ]
        )
    )
    steps = load(str(path), "m100")
    assert steps == (Step(0.0, ((EPC_A, -50), (EPC_B, -62))), Step(10.0, (), (EPC_A,)))
    assert due(steps, -1, 0) == [steps[0]] and due(steps, 0, 9.9) == [] and due(steps, 9.9, 10) == [steps[1]]


@pytest.mark.parametrize(
    "document, message",
    [
        ({}, "non-empty JSON list"),
        ([], "non-empty JSON list"),
        ([{"at": -1}], "'at' must be seconds"),
        ([{"at": True}], "'at' must be seconds"),
        ([{"at": 0, "present": "ABCD"}], "'present' must be a list"),
        ([{"at": 0, "present": [{"rssi": -5}]}], "each of 'present'"),
        ([{"at": 0, "remove": [1]}], "'remove' is a list of EPC strings"),
        ([{"at": 0, "wait": 5}], "keys at, present, remove"),
    ],
)
def test_bad_scenarios_say_what_is_wrong(document: object, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse(document)


def test_unknown_scenario_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="neither built-in"):
        load(str(tmp_path / "nope.json"), "m100")
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(ScenarioError, match="bad.json"):
        load(str(tmp_path / "bad.json"), "m100")


def test_fitting_room_uses_the_sample_catalogue() -> None:
    gtins = {row["gtin"] for row in json.loads(CATALOGUE.read_text(encoding="utf-8"))["products"]}
    epcs = catalogue_tags("m100")
    decoded = [decode_epc(epc) for epc in epcs]
    assert all(s is not None and s.company_prefix == "4012345" and s.gtin in gtins for s in decoded)
    steps = load("fitting-room", "m100", seed=4)
    entered = [epc for step in steps for epc, _ in step.present]
    left = [epc for step in steps for epc in step.remove]
    assert sorted(entered) == sorted(left) and set(entered) <= set(epcs)
    assert all(1 <= len(step.present) <= 4 for step in steps if step.present)
    assert [s.at for s in steps] == sorted(s.at for s in steps)


def test_125khz_scenarios_use_the_catalogue_tag_ids() -> None:
    tags = catalogue_tags("rdm6300")
    lf_tags = {t for row in json.loads(CATALOGUE.read_text(encoding="utf-8"))["products"] for t in row.get("tags", [])}
    assert tags and set(tags) == lf_tags
    assert all(encode_read("rdm6300", tag, -50) for tag in tags)


def test_fitting_room_with_few_tags() -> None:
    steps = fitting_room(["62E3086CED"], random.Random(1), shoppers=2)
    assert [len(s.present) for s in steps] == [1, 0, 1, 0]


def test_play_follows_the_clock_and_loops() -> None:
    """A fake clock drives the scenario; the stop event ends it once the clock has run out."""
    steps = (Step(0.0, ((EPC_A, -50),)), Step(2.0, ((EPC_B, -50),), (EPC_A,)))
    times = iter([0.0, 0.0, 1.0, 2.0, 3.0, 7.0, 7.0, 7.5])
    stop = threading.Event()
    seen: list[dict[str, int]] = []

    with Simulator("m100", rate=1000) as sim:

        def clock() -> float:
            seen.append(sim.tags)
            value = next(times, None)
            if value is None:
                stop.set()
                return 7.5
            return value

        sim.play(steps, stop, loop=True, clock=clock)
    # seen[k] is the field at clock call k: the start, one per tick, one more at the restart.
    assert seen[2] == {EPC_A: -50}  # after t=0
    assert seen[4] == {EPC_B: -50}  # after t=2
    assert seen[6] == {}  # t=7 >= last step + LOOP_GAP_S: emptied, restarted at 7
    assert seen[8] == {EPC_A: -50}  # the step at 0 of the second run


def run_simulate_reader(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from touchpoint.cli import main; main()", "simulate-reader", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_prints_the_pty_path_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    scenario = tmp_path / "one.json"
    scenario.write_text(json.dumps([{"at": 0, "present": ["62E3086CED"]}]))
    process = run_simulate_reader("--protocol", "rdm6300", "--scenario", str(scenario), "--rate", "50", "--once")
    try:
        assert process.stdout is not None
        path = process.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        framer = make_framer("rdm6300")
        reads: list[TagRead] = []
        with serial.serial_for_url(path, timeout=0.2) as port:
            while len(reads) < 3:
                reads += framer.feed(port.read(port.in_waiting or 1))
        assert set(reads) == {TagRead("62E3086CED", None)}
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
    finally:
        process.kill()
        process.communicate()


def test_cli_refuses_a_bad_scenario_with_a_message(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.json"
    scenario.write_text(json.dumps([{"at": 0, "present": ["NOT-HEX"]}]))
    process = run_simulate_reader("--protocol", "m100", "--scenario", str(scenario))
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 1 and stdout == ""
    assert "simulate-reader: EPC is not hex" in stderr
