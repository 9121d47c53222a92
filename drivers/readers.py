"""The readers an edge runs, behind one small interface: serial ones (:mod:`drivers.reader`) and
fixed network readers over LLRP (:mod:`drivers.llrp`, imported only where one is configured)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from drivers import mercury
from drivers.reader import Reader, ReaderStatus
from drivers.types import TagRead


class TagReader(Protocol):
    """What the edge and the doctor need of a reader: its own thread, started and stopped, and a status."""

    name: str

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    def status(self) -> ReaderStatus: ...


def open_reader(
    protocol: str, url: str, on_read: Callable[[TagRead], None], *, name: str, baudrate: int = 0, region: str = "eu"
) -> TagReader:
    """A reader of ``protocol`` at ``url`` (not started); raises ReaderError for an unknown protocol."""
    if protocol == "llrp":
        from drivers.llrp import LlrpReader

        return LlrpReader(url, on_read, name=name)
    start = mercury.start_reading(region) if protocol == "mercury" else None
    return Reader(protocol, url, on_read, baudrate=baudrate, name=name, start=start)
