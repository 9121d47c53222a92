"""Errors of the drivers package, rooted at TouchpointError and at the matching builtin."""

from __future__ import annotations

from common.errors import TouchpointError


class ReaderError(TouchpointError):
    """Something about an RFID reader: its protocol, its frames or its simulator."""


class FrameError(ReaderError, ValueError):
    """A frame failed a check; ``raw`` keeps the bytes it failed on for the log."""

    def __init__(self, raw: bytes | bytearray, reason: str) -> None:
        self.raw = bytes(raw)
        self.reason = reason
        super().__init__(f"{reason}: {self.raw.hex(' ')}")


class EpcError(ReaderError, ValueError):
    """A GTIN, serial or filter cannot be encoded as the EPC asked for."""
