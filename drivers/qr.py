"""Loyalty QR codes: the payload format, decoding a frame, and debouncing what the camera sees.

Payload format, version 1::

    TPC1:<token>        token = 8 to 64 of A-Z a-z 0-9 _ -

``<token>`` is the pseudonymous customer token that the retailer's app shows as a QR code; it
becomes ``customer`` in ``customer.identified`` events. It is never a name or an e-mail address,
and the edge learns nothing else from the code. Anything else a shopper holds up (a URL, a
boarding pass, a ``TPC2:`` code from a newer app) is not a loyalty code: ``parse_loyalty_code``
returns None and the reader counts it as ignored. Nothing here raises on any text.

Decoding uses zxing-cpp: on the same frames it found every code that OpenCV's
``QRCodeDetector`` and ``QRCodeDetectorAruco`` found and more (1-2 px modules, light on dark),
in a fraction of their time; bench/RESULTS.md, ``## QR decoding``, has the numbers.

Everything here is pure: frames come in as arrays, time comes in as an argument.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import cv2
import numpy as np
import zxingcpp

LOYALTY_PREFIX = "TPC1:"
LOYALTY_CODE = re.compile(re.escape(LOYALTY_PREFIX) + r"([A-Za-z0-9_-]{8,64})")
GONE_S = 2.0  # a code must be out of view this long before it is reported again


def parse_loyalty_code(text: str) -> str | None:
    """The customer token of a loyalty payload, or None for any other text."""
    if not isinstance(text, str):
        return None
    match = LOYALTY_CODE.fullmatch(text)
    return match.group(1) if match else None


def decode_qr(frame: np.ndarray) -> list[str]:
    """The texts of every QR code in a greyscale or BGR frame, in zxing's order, no repeats.

    zxing-cpp also tries the inverted image, so light-on-dark codes (dark-mode apps) are found.
    """
    if frame.size == 0:
        return []
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    found = zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode))
    return list(dict.fromkeys(barcode.text for barcode in found))


class Debouncer:
    """Reports a code when it comes into view, and again only once it was gone ``gone_s``.

    A code held up to the camera is in many consecutive frames, and a decoder misses it in some;
    both must count as one sighting, so "gone" means not decoded for ``gone_s`` seconds.
    """

    def __init__(self, gone_s: float = GONE_S) -> None:
        self.gone_s = gone_s
        self._last_seen: dict[str, float] = {}

    def update(self, codes: Iterable[str], now: float) -> list[str]:
        """The codes among ``codes`` (decoded from the frame taken at ``now``) that are new."""
        fresh = []
        for code in dict.fromkeys(codes):
            last = self._last_seen.get(code)
            if last is None or now - last >= self.gone_s:
                fresh.append(code)
            self._last_seen[code] = now
        self._last_seen = {c: t for c, t in self._last_seen.items() if now - t < self.gone_s}
        return fresh
