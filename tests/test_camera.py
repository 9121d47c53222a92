"""The camera/QR reader: payload parsing, debouncing, decoding every sample variant, and the
reader thread against real folders, a real AVI file and sources that cannot be opened."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from drivers import qr_samples
from drivers.camera import CameraReader, CameraStatus
from drivers.qr import LOYALTY_PREFIX, Debouncer, decode_qr, parse_loyalty_code
from drivers.reader import ReaderState
from tests.kiosk_support import edge_config

TOKENS = st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True)


def wait_for(reader: CameraReader, condition: Callable[[CameraStatus], bool]) -> CameraStatus:
    """Poll the reader's status until ``condition`` holds; fail after a generous 20 s."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = reader.status()
        if condition(status):
            return status
        time.sleep(0.02)
    pytest.fail(f"condition never held; last status {reader.status()}")


def token(payload: str) -> str:
    return payload.removeprefix(LOYALTY_PREFIX)


# -- the payload format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("TPC1:abcdEFGH", "abcdEFGH"),
        ("TPC1:a-b_c-d_1234", "a-b_c-d_1234"),
        ("TPC1:" + "x" * 64, "x" * 64),
        ("TPC1:abcdEFG", None),  # 7 characters
        ("TPC1:" + "x" * 65, None),
        ("TPC2:abcdEFGH", None),
        ("tpc1:abcdEFGH", None),
        ("TPC1:abcdEFGH\n", None),
        (" TPC1:abcdEFGH", None),
        ("TPC1:abcd EFGH", None),
        ("TPC1:abcd\u0663EFGH", None),  # a non-ASCII digit
        ("https://example.com/TPC1:abcdEFGH", None),
        ("", None),
    ],
)
def test_parse_loyalty_code(text: str, expected: str | None) -> None:
    assert parse_loyalty_code(text) == expected


@given(st.text())
def test_parse_loyalty_code_never_raises_and_accepts_only_the_format(text: str) -> None:
    parsed = parse_loyalty_code(text)
    assert parsed is None or LOYALTY_PREFIX + parsed == text


@given(TOKENS)
def test_every_valid_token_round_trips(customer: str) -> None:
    assert parse_loyalty_code(LOYALTY_PREFIX + customer) == customer


@given(st.one_of(st.none(), st.integers(), st.binary()))
def test_parse_loyalty_code_ignores_non_text(value: object) -> None:
    assert parse_loyalty_code(value) is None  # type: ignore[arg-type]


# -- debouncing ---------------------------------------------------------------------------------


def test_a_code_held_up_is_reported_once_and_again_after_it_left() -> None:
    debouncer = Debouncer(gone_s=2.0)
    assert debouncer.update(["A"], now=10.0) == ["A"]
    assert debouncer.update(["A", "A"], now=10.2) == []
    assert debouncer.update([], now=10.4) == []  # a missed frame
    assert debouncer.update(["A", "B"], now=11.9) == ["B"]  # A was gone only 1.7 s
    assert debouncer.update([], now=12.5) == []
    assert debouncer.update(["B", "A"], now=13.9) == ["B", "A"]  # both gone 2.0 s
    assert debouncer.update(["A", "B"], now=14.0) == []


FRAMES = st.lists(st.tuples(st.floats(0.0, 3.0), st.lists(st.sampled_from("ABC"), max_size=4)), max_size=40)


@given(FRAMES)
def test_debouncer_reports_exactly_the_first_sightings(frames: list[tuple[float, list[str]]]) -> None:
    """Reported in a frame iff the code is in it and was not seen in the 2 s before."""
    debouncer = Debouncer(gone_s=2.0)
    now, history = 0.0, []
    for step, codes in frames:
        now += step
        expected = [
            code
            for code in dict.fromkeys(codes)
            if not any(code in seen and now - when < 2.0 for when, seen in history)
        ]
        assert debouncer.update(codes, now) == expected
        history.append((now, codes))


# -- decoding the sample variants ---------------------------------------------------------------


@pytest.mark.parametrize("variant", qr_samples.VARIANTS)
def test_decode_qr_finds_every_code_of_every_variant(variant: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(3):
        sample = qr_samples.sample(variant, rng)
        assert sorted(decode_qr(sample.frame)) == sorted(sample.payloads)
        assert sorted(decode_qr(qr_samples.to_bgr(sample.frame))) == sorted(sample.payloads)


SIDES = st.integers(0, 48)
FRAMES_ANY = arrays(np.uint8, st.tuples(SIDES, SIDES) | st.tuples(SIDES, SIDES, st.just(3)))


@given(FRAMES_ANY)
def test_decode_qr_never_raises_on_any_frame(frame: np.ndarray) -> None:
    assert all(isinstance(text, str) for text in decode_qr(frame))


def test_unknown_sample_variant_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown QR sample variant 'sideways'"):
        qr_samples.sample("sideways", np.random.default_rng(0))


# -- the reader thread --------------------------------------------------------------------------


def write_frames(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir()
    for number, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"frame-{number:03}.png"), frame)


def snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_reader_reports_every_loyalty_code_in_a_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    samples = qr_samples.samples(per_variant=2, seed=3)
    foreign = qr_samples.render("https://example.com/offer", scale=6)
    folder = tmp_path / "frames"
    write_frames(folder, [s.frame for s in samples] + [foreign])
    (folder / "frame-999.png").write_bytes(b"not a png")
    expected = [token(p) for s in samples for p in s.payloads]
    before = snapshot(tmp_path)
    config = edge_config(tmp_path, camera={"source": str(folder), "fps": 100})
    received: list[str] = []

    reader = CameraReader(config.camera.source, received.append, fps=config.camera.fps).start()
    try:
        status = wait_for(reader, lambda s: s.reconnects >= 1)
    finally:
        reader.stop()

    assert Counter(received[: len(expected)]) == Counter(expected)
    assert status.frames_total >= len(samples) + 1
    assert status.ignored_total >= 1
    assert "frame-999.png: not a readable image" in caplog.text
    assert f"no frame from {str(folder)!r}: end of video or folder" in caplog.text
    assert reader.status().state is ReaderState.STOPPED
    assert snapshot(tmp_path) == before  # the reader wrote nothing anywhere under tmp_path


def test_reader_debounces_a_code_across_the_frames_of_a_video(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    first, second = qr_samples.random_payload(rng), qr_samples.random_payload(rng)
    blank = np.full(qr_samples.FRAME, 220, dtype=np.uint8)

    def framed(payload: str) -> np.ndarray:
        frame = blank.copy()
        code = qr_samples.render(payload, scale=6)
        frame[40 : 40 + code.shape[0], 40 : 40 + code.shape[1]] = code
        return frame

    video = tmp_path / "shoppers.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, blank.shape[::-1], isColor=False)
    for frame in [blank] * 3 + [framed(first)] * 8 + [blank] * 2 + [framed(first)] * 8 + [framed(second)] * 8:
        writer.write(frame)
    writer.release()
    received: list[str] = []

    reader = CameraReader(str(video), received.append, fps=100).start()
    try:
        status = wait_for(reader, lambda s: s.frames_total >= 29)
    finally:
        reader.stop()

    assert received[:2] == [token(first), token(second)]  # first's return after 2 frames is no news
    assert status.ignored_total == 0


def test_an_exception_in_on_code_does_not_stop_the_reader(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    samples = [qr_samples.sample("plain", rng) for _ in range(2)]
    write_frames(tmp_path / "frames", [s.frame for s in samples])
    received: list[str] = []

    def on_code(customer: str) -> None:
        received.append(customer)
        if len(received) == 1:
            raise RuntimeError("consumer bug")

    reader = CameraReader(str(tmp_path / "frames"), on_code, fps=100).start()
    try:
        status = wait_for(reader, lambda s: s.codes_total >= 2)
    finally:
        reader.stop()

    assert received[:2] == [token(s.payloads[0]) for s in samples]
    assert status.frames_total >= 2


@pytest.mark.parametrize(
    "source, error",
    [
        ("missing.avi", "cannot open video 'missing.avi': no such device or file"),
        ("9", "cannot open camera 9: no such device or file"),
        ("empty", "cannot open folder '{tmp}/empty': it holds no"),
        ("not-a-video.avi", "cannot open video '{tmp}/not-a-video.avi'"),
    ],
)
def test_an_unopenable_source_leaves_the_reader_disconnected_with_the_reason(
    tmp_path: Path, source: str, error: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "not-a-video.avi").write_bytes(b"\x00" * 100)
    if not source.isdigit() and source != "missing.avi":
        source = str(tmp_path / source)
    received: list[str] = []
    reader = CameraReader(source, received.append, fps=5).start()
    try:
        status = wait_for(reader, lambda s: s.state is ReaderState.DISCONNECTED)
    finally:
        reader.stop()

    assert (status.last_error or "").startswith(error.format(tmp=tmp_path))
    assert status.frames_total == status.reconnects == 0 and received == []
    assert reader.status().state is ReaderState.STOPPED


def test_a_reader_that_never_started_stops_cleanly() -> None:
    reader = CameraReader("0", lambda customer: None)
    reader.stop()
    assert reader.status() == CameraStatus(ReaderState.STOPPED)


def test_fps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="fps must be positive, got 0"):
        CameraReader("0", lambda customer: None, fps=0)


def test_a_source_that_stays_unopenable_is_retried_with_growing_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.camera")
    video = tmp_path / "unplugged.avi"
    reader = CameraReader(str(video), lambda customer: None).start()
    try:
        wait_for(reader, lambda s: "reopening in 1.0 s" in caplog.text)
    finally:
        reader.stop()
    failures = [r.getMessage() for r in caplog.records if r.name == "drivers.camera"]
    assert failures[:2] == [
        f"camera: cannot open video {str(video)!r}: no such device or file, or not readable by OpenCV; "
        f"reopening in {delay} s"
        for delay in ("0.5", "1.0")
    ]


def test_the_qr_benchmark_runs_and_zxing_finds_every_code(capsys: pytest.CaptureFixture[str]) -> None:
    """Keeps bench/bench_qr.py from rotting; its timings are not asserted."""
    from bench import bench_qr

    bench_qr.main(["--per-variant", "1", "--seed", "4"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(bench_qr.DECODERS)
    zxing = next(row for row in rows if row.startswith("| zxing-cpp"))
    assert zxing.split(" | ")[1:12] == ["100%"] * 11 and zxing.split(" | ")[12] == "0"
