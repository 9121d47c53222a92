"""The camera reader: frames from a camera, a video file or a folder of images, scanned for
loyalty QR codes in a background thread.

The ``[camera] source`` string picks the source: digits are a camera index (``"0"`` is
``/dev/video0``), an existing folder is read image by image in name order (tests, demos), and
anything else goes to OpenCV as a video file or stream URL. Frames live only in memory and are
dropped after decoding; nothing is ever written to disk (the edge stores no images).

A source that cannot be opened, or that stops delivering frames (camera unplugged, end of a
video or folder), leaves the reader disconnected with the reason in ``last_error``; it is
reopened with the RFID reader's backoff (0.5 s doubling to 10 s), so a finite source replays.
States and backoff are the RFID reader's (drivers.reader), so staff see both alike. Nothing
raises out of the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypedDict, Unpack

import cv2
import numpy as np

from common.backoff import Backoff
from common.errors import TouchpointError
from drivers.qr import Debouncer, decode_qr, parse_loyalty_code
from drivers.reader import BACKOFF_INITIAL_S, BACKOFF_MAX_S, ReaderState

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"})


class CameraError(TouchpointError, OSError):
    """A camera source cannot be opened: no such device, folder or readable video."""


@dataclass(frozen=True)
class CameraStatus:
    """What the staff screen and /metrics show about the camera."""

    state: ReaderState
    frames_total: int = 0
    codes_total: int = 0  # loyalty codes reported to ``on_code``
    ignored_total: int = 0  # other QR codes seen (debounced like loyalty codes)
    reconnects: int = 0  # opened again after having been open
    last_error: str | None = None  # why it is disconnected; None while connected


class _StatusChanges(TypedDict, total=False):
    """The CameraStatus fields that ``CameraReader._update`` sets."""

    state: ReaderState
    last_error: str | None


class FrameSource(Protocol):
    """What the reader needs from a source; ``read`` returns None when no frame comes."""

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class CaptureSource:
    """A camera index or a video file, through ``cv2.VideoCapture``."""

    def __init__(self, capture: cv2.VideoCapture) -> None:
        self._capture = capture

    def read(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        return frame if ok else None

    def close(self) -> None:
        self._capture.release()


class FolderSource:
    """The images of a folder in name order, once; an unreadable file is logged and skipped."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths: Iterator[Path] = iter(paths)

    def read(self) -> np.ndarray | None:
        for path in self._paths:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
            log.warning("camera: skipping %s: not a readable image", path)
        return None

    def close(self) -> None:
        self._paths = iter(())


def open_source(source: str) -> FrameSource:
    """Open ``source`` (camera index, folder or video); raises CameraError saying why not."""
    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # decode the newest frame, not a stale queue
        what = f"camera {source}"
    elif Path(source).is_dir():
        paths = sorted(p for p in Path(source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise CameraError(f"cannot open folder {source!r}: it holds no {'/'.join(sorted(IMAGE_SUFFIXES))} images")
        return FolderSource(paths)
    else:
        capture = cv2.VideoCapture(source)
        what = f"video {source!r}"
    if not capture.isOpened():
        capture.release()
        raise CameraError(f"cannot open {what}: no such device or file, or not readable by OpenCV")
    return CaptureSource(capture)


class CameraReader:
    """Reads frames at ``fps``, decodes QR codes and calls ``on_code(token)`` once per sighting.

    ``on_code`` runs in the reader's thread with the customer token of a loyalty code; it should
    hand the token on quickly. An exception from it is logged and the reader goes on.
    """

    def __init__(self, source: str, on_code: Callable[[str], None], *, fps: float = 5.0) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.source = source
        self._on_code = on_code
        self._period = 1.0 / fps
        self._debouncer = Debouncer()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._status = CameraStatus(ReaderState.STOPPED)
        self._thread: threading.Thread | None = None

    def start(self) -> CameraReader:
        """Start the reader thread; it opens the source in the background."""
        if self._thread is None:
            self._stopping.clear()
            self._update(state=ReaderState.CONNECTING)
            self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and release the source; a camera hung in a read is logged and left."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("camera %s: thread did not stop within %.1f s", self.source, timeout)
            self._thread = None
        self._update(state=ReaderState.STOPPED)

    def status(self) -> CameraStatus:
        with self._lock:
            return self._status

    def _update(self, **changes: Unpack[_StatusChanges]) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    def _count(self, field: str) -> None:
        with self._lock:
            self._status = replace(self._status, **{field: getattr(self._status, field) + 1})

    def _run(self) -> None:
        backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        opened_before = False
        while not self._stopping.is_set():
            self._update(state=ReaderState.CONNECTING)
            try:
                source = open_source(self.source)
                if opened_before:
                    self._count("reconnects")
                opened_before = True
                self._read_from(source, backoff)
                error = f"no frame from {self.source!r}: end of video or folder, or camera unplugged"
            except CameraError as failure:
                error = str(failure)
            except Exception as failure:  # a driver bug must not kill the reader: report, retry
                log.exception("camera %s failed", self.source)
                error = f"{type(failure).__name__}: {failure}"
            if self._stopping.is_set():
                break
            delay = backoff.next()
            log.warning("camera: %s; reopening in %.1f s", error, delay)
            self._update(state=ReaderState.DISCONNECTED, last_error=error)
            self._stopping.wait(delay)

    def _read_from(self, source: FrameSource, backoff: Backoff) -> None:
        """Pump frames until the source runs dry or stop() is called."""
        try:
            self._update(state=ReaderState.CONNECTED, last_error=None)
            while not self._stopping.is_set():
                due = time.monotonic() + self._period
                frame = source.read()
                if frame is None:
                    return
                backoff.reset()
                self._count("frames_total")
                self._handle(decode_qr(frame), time.monotonic())
                del frame  # dropped now, not kept until the next read
                self._stopping.wait(max(0.0, due - time.monotonic()))
        finally:
            source.close()

    def _handle(self, texts: list[str], now: float) -> None:
        for text in self._debouncer.update(texts, now):
            token = parse_loyalty_code(text)
            if token is None:
                self._count("ignored_total")
                continue
            self._count("codes_total")
            try:
                self._on_code(token)
            except Exception:  # the consumer's bug must not stop the camera
                log.exception("camera: on_code failed for a loyalty code")
