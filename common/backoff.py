"""Capped exponential delays between retries, for everything that reconnects: readers, cameras, MQTT."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """``first_s``, twice that, four times, ... up to ``max_s``; ``reset`` after a success.

    With ``jitter`` half of each step is fixed and half random, so a fleet of devices that lost
    the broker at the same moment spreads its reconnects instead of arriving together.
    """

    first_s: float = 0.25
    max_s: float = 30.0
    jitter: bool = False
    attempt: int = 0  # tries since the last success

    def next(self, rand: float = 1.0) -> float:
        """Seconds to wait before the next try; ``rand`` in [0, 1) places a jittered delay in its step."""
        step = min(self.max_s, self.first_s * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return step / 2 + rand * step / 2 if self.jitter else step

    def reset(self) -> None:
        self.attempt = 0
