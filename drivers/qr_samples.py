"""Synthetic camera frames with loyalty QR codes, for tests, the QR benchmark and demos.

Each variant stands for something a kiosk camera really sees: a card held crooked or upside
down, a phone far away (1-2 px per module), motion blur, a dark-mode app (light on dark), a dim
screen (low contrast), two phones at once, or nobody at all. Frames are greyscale numpy arrays
made in memory from ``segno`` matrices; the same seed gives the same frames.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import cv2
import numpy as np
import segno

from drivers.qr import LOYALTY_PREFIX

VARIANTS = (
    "plain",
    "rotated-15",
    "rotated-90",
    "rotated-180",
    "small-2px",
    "small-1px",
    "blurred",
    "inverted",
    "low-contrast",
    "two-codes",
    "no-code",
)
FRAME = (480, 640)  # rows, columns: a VGA camera frame
LARGE_FRAME = (720, 1280)
TOKEN_ALPHABET = string.ascii_letters + string.digits + "_-"


@dataclass(frozen=True)
class Sample:
    """One frame and the payloads a perfect decoder would find in it."""

    variant: str
    frame: np.ndarray
    payloads: tuple[str, ...]


def random_payload(rng: np.random.Generator) -> str:
    """A valid loyalty payload with a random 16-24 character token."""
    length = int(rng.integers(16, 25))
    return LOYALTY_PREFIX + "".join(rng.choice(list(TOKEN_ALPHABET), size=length))


def render(payload: str, scale: int, quiet: int = 4) -> np.ndarray:
    """The code as a greyscale image: dark modules 0, light 255, ``scale`` px per module."""
    matrix = np.array(segno.make_qr(payload, error="m").matrix, dtype=np.uint8)
    matrix = np.pad(matrix, quiet)
    return np.kron(255 - 255 * matrix, np.ones((scale, scale), dtype=np.uint8)).astype(np.uint8)


def sample(variant: str, rng: np.random.Generator) -> Sample:
    """A frame of the named variant (one of ``VARIANTS``); raises ValueError on another name."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown QR sample variant {variant!r}; known: {', '.join(VARIANTS)}")
    if variant == "no-code":
        return Sample(variant, _background(FRAME, rng), ())
    if variant == "two-codes":
        payloads = (random_payload(rng), random_payload(rng))
        frame = _background(FRAME, rng)
        half = FRAME[1] // 2
        left, right = frame[:, :half], frame[:, half:]
        _place(left, render(payloads[0], 5), rng)
        _place(right, render(payloads[1], 5), rng)
        return Sample(variant, _noisy(frame, rng), payloads)
    payload = random_payload(rng)
    scale = {"small-2px": 2, "small-1px": 1}.get(variant, 6)
    code = render(payload, scale)
    if variant.startswith("rotated-"):
        code = _rotate(code, float(variant.removeprefix("rotated-")))
    frame = _background(LARGE_FRAME if variant.startswith("small") else FRAME, rng)
    _place(frame, code, rng)
    if variant == "blurred":
        frame = cv2.GaussianBlur(frame, (0, 0), sigmaX=2.0)
    elif variant == "inverted":
        frame = 255 - frame
    elif variant == "low-contrast":
        frame = (110 + frame.astype(np.float32) * (40 / 255)).astype(np.uint8)
    return Sample(variant, _noisy(frame, rng), (payload,))


def samples(per_variant: int, seed: int = 1) -> list[Sample]:
    """``per_variant`` frames of every variant, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [sample(variant, rng) for variant in VARIANTS for _ in range(per_variant)]


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Three channels, as a colour camera delivers them."""
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def _background(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A light, unevenly lit wall: a gradient between two random greys."""
    top, bottom = rng.integers(170, 240, size=2)
    column = np.linspace(top, bottom, shape[0], dtype=np.float32)
    return np.repeat(column[:, None], shape[1], axis=1).astype(np.uint8)


def _place(frame: np.ndarray, code: np.ndarray, rng: np.random.Generator) -> None:
    rows, cols = code.shape
    top = int(rng.integers(0, frame.shape[0] - rows + 1))
    left = int(rng.integers(0, frame.shape[1] - cols + 1))
    frame[top : top + rows, left : left + cols] = code


def _rotate(code: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the centre into a canvas large enough for the corners, padded light."""
    rows, cols = code.shape
    matrix = cv2.getRotationMatrix2D((cols / 2, rows / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    width, height = int(rows * sin + cols * cos) + 1, int(rows * cos + cols * sin) + 1
    matrix[0, 2] += width / 2 - cols / 2
    matrix[1, 2] += height / 2 - rows / 2
    return cv2.warpAffine(code, matrix, (width, height), borderValue=255)


def _noisy(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise, sigma 4 grey levels."""
    noise = rng.normal(0.0, 4.0, frame.shape)
    return np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)
