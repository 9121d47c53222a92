"""Which QR decoder should the camera use? OpenCV's two detectors against zxing-cpp.

Every decoder gets the same BGR frames (drivers.qr_samples: every variant, N frames each) and is
timed per frame. The baseline, measured in the same run, is what every decoder must do anyway:
converting the frame to greyscale. Reported: the share of codes found per variant, false codes
(decoded text that is not in the frame) and the mean time per frame, also as a multiple of the
baseline, which stays comparable across machines.

    python -m bench.bench_qr                    # 20 frames per variant
    python -m bench.bench_qr --per-variant 50 --seed 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import cv2
import numpy as np

from drivers import qr_samples
from drivers.qr import decode_qr

Decoder = Callable[[np.ndarray], list[str]]


def greyscale_only(frame: np.ndarray) -> list[str]:
    cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return []


def opencv(detector: cv2.QRCodeDetector | cv2.QRCodeDetectorAruco, *, invert: bool) -> Decoder:
    """An OpenCV detector on the grey frame; with ``invert``, also on the negative if it found nothing."""

    def decode(frame: np.ndarray) -> list[str]:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        attempts = (grey, 255 - grey) if invert else (grey,)
        for image in attempts:
            ok, texts, _points, _codes = detector.detectAndDecodeMulti(image)
            found = [text for text in texts if text] if ok else []
            if found:
                return found
        return []

    return decode


DECODERS: dict[str, Decoder] = {
    "greyscale only (baseline)": greyscale_only,
    "cv2.QRCodeDetector": opencv(cv2.QRCodeDetector(), invert=False),
    "cv2.QRCodeDetector + inverted": opencv(cv2.QRCodeDetector(), invert=True),
    "cv2.QRCodeDetectorAruco": opencv(cv2.QRCodeDetectorAruco(), invert=False),
    "cv2.QRCodeDetectorAruco + inverted": opencv(cv2.QRCodeDetectorAruco(), invert=True),
    "zxing-cpp (drivers.qr.decode_qr)": decode_qr,
}


@dataclass(frozen=True)
class Result:
    found: dict[str, tuple[int, int]]  # variant -> (codes found, codes in the frames)
    false_codes: int
    seconds_per_frame: float
    seconds_per_empty_frame: float  # what a kiosk camera sees most of the day


def measure(decoder: Decoder, frames: list[qr_samples.Sample]) -> Result:
    for sample in frames[:3]:  # warm-up: first calls allocate
        decoder(sample.frame)
    found: dict[str, tuple[int, int]] = {}
    false_codes, elapsed, elapsed_empty, empty = 0, 0.0, 0.0, 0
    for sample in frames:
        start = time.perf_counter()
        texts = decoder(sample.frame)
        seconds = time.perf_counter() - start
        elapsed += seconds
        if not sample.payloads:
            elapsed_empty, empty = elapsed_empty + seconds, empty + 1
        hits = len(set(texts) & set(sample.payloads))
        false_codes += len(set(texts) - set(sample.payloads))
        before = found.get(sample.variant, (0, 0))
        found[sample.variant] = (before[0] + hits, before[1] + len(sample.payloads))
    return Result(found, false_codes, elapsed / len(frames), elapsed_empty / max(empty, 1))


def table(results: dict[str, Result]) -> str:
    """A Markdown table: detection per variant, overall, false codes, time per frame."""
    variants = [v for v in qr_samples.VARIANTS if v != "no-code"]
    baseline = results["greyscale only (baseline)"].seconds_per_frame
    header = ["decoder", *variants, "all", "false", "ms/frame", "x baseline", "ms/empty frame"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in results.items():
        hits = sum(result.found[v][0] for v in variants)
        total = sum(result.found[v][1] for v in variants)
        cells = [f"{100 * result.found[v][0] / result.found[v][1]:.0f}%" for v in variants]
        cells += [
            f"{100 * hits / total:.0f}%",
            str(result.false_codes),
            f"{1000 * result.seconds_per_frame:.2f}",
            f"{result.seconds_per_frame / baseline:.0f}",
            f"{1000 * result.seconds_per_empty_frame:.2f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_qr", description=__doc__.splitlines()[0])
    parser.add_argument("--per-variant", type=int, default=20, help="frames per variant (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated frames (default 1)")
    args = parser.parse_args(argv)
    frames = [
        qr_samples.Sample(s.variant, qr_samples.to_bgr(s.frame), s.payloads)
        for s in qr_samples.samples(args.per_variant, args.seed)
    ]
    print(
        f"{len(frames)} BGR frames ({args.per_variant} per variant, seed {args.seed}); "
        f"OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads, zxing-cpp {version('zxing-cpp')}"
    )
    print(table({name: measure(decoder, frames) for name, decoder in DECODERS.items()}))


if __name__ == "__main__":
    main()
