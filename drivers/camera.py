"""The camera reader: frames from a camera, a video file or a folder of images, scanned for
loyalty QR codes in a background thread.

The ``[camera] source`` string picks the source: digits are a camera index (``"0"`` is
``/dev/video0``), an existing folder is read image by image in name order (tests, demos), and
anything else goes to OpenCV as a video file or stream URL. Frames live only in memory and are
dropped after decoding; nothing is ever written to disk (the edge stores no images).

A source that cannot be opened, or that stops delivering frames (camera unplugged, end of a
video or folder), leaves the reader disconnected with the reason in ``last_error``; it is
reopened after a backoff that doubles from 0.5 s to 30 s, so a finite source replays. Nothing
raises out of the thread.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from drivers.qr import Debouncer, decode_qr, parse_loyalty_code
from touchpoint.errors import TouchpointError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"})
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class CameraError(TouchpointError, OSError):
    """The camera source cannot be opened or stopped delivering frames."""


class CameraState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass(frozen=True)
class CameraStatus:
    """What the staff screen and /metrics show about the camera."""

    state: CameraState
    frames_total: int = 0
    codes_total: int = 0  # loyalty codes reported to ``on_code``
    ignored_total: int = 0  # other QR codes seen (debounced like loyalty codes)
    reopens_total: int = 0
    last_error: str | None = None


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


def backoff_s(failures: int) -> float:
    """Seconds to wait before reopening after ``failures`` consecutive failures (from 1)."""
    return min(FIRST_BACKOFF_S * 2 ** max(failures - 1, 0), MAX_BACKOFF_S)


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
        self._status = CameraStatus(CameraState.CONNECTING)
        self._thread = threading.Thread(target=self._run, name=f"camera {source}", daemon=True)

    def start(self) -> CameraReader:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and release the source; raises CameraError if the thread hangs."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise CameraError(f"camera thread for {self.source!r} did not stop within {timeout} s")
        self._update(state=CameraState.STOPPED)

    def status(self) -> CameraStatus:
        with self._lock:
            return self._status

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    def _count(self, field: str) -> None:
        with self._lock:
            self._status = replace(self._status, **{field: getattr(self._status, field) + 1})

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._update(state=CameraState.CONNECTING)
            try:
                frames = self._read_from(open_source(self.source))
                error = f"no frame from {self.source!r}: end of video or folder, or camera unplugged"
            except CameraError as failure:
                frames, error = 0, str(failure)
            except Exception as failure:  # a driver bug must not kill the reader: report, retry
                log.exception("camera %s failed", self.source)
                frames, error = 0, f"{type(failure).__name__}: {failure}"
            if self._stopping.is_set():
                break
            failures = 1 if frames else failures + 1
            log.warning("camera: %s; reopening in %.1f s", error, backoff_s(failures))
            self._update(state=CameraState.DISCONNECTED, last_error=error)
            if self._stopping.wait(backoff_s(failures)):
                break
            self._count("reopens_total")

    def _read_from(self, source: FrameSource) -> int:
        """Pump frames until the source runs dry or stop(); returns how many it delivered."""
        frames = 0
        try:
            self._update(state=CameraState.CONNECTED)
            while not self._stopping.is_set():
                due = time.monotonic() + self._period
                frame = source.read()
                if frame is None:
                    return frames
                frames += 1
                self._count("frames_total")
                self._handle(decode_qr(frame), time.monotonic())
                del frame  # dropped now, not kept until the next read
                self._stopping.wait(max(0.0, due - time.monotonic()))
            return frames
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
