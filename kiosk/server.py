"""The production web server of ``touchpoint edge``: ``common.webserver`` (waitress with ``[web]``'s limits).

A server-sent event stream holds a worker thread for as long as its screen is open, so at most
``[web] max_streams`` (never more than half of ``[web] threads``) are served at once and the rest
of the pool stays for the screens' API calls and ``/api/status``. Shutdown ends the streams
first, then stops the server, the reader and the ticker, then closes the outbox.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from flask import Flask

from common import systemd
from common.config import EdgeConfig
from common.webserver import BoundedServer
from contract.catalog import CatalogError
from kiosk.app import create_app, shutdown
from kiosk.edge import EXTENSION
from sync.outbox import Outbox

log = logging.getLogger(__name__)


class EdgeServer:
    """The edge app on its server in a background thread: ``start()`` returns the URL, ``stop()`` ends it."""

    def __init__(
        self, config: EdgeConfig, *, outbox: Outbox | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self.config = config
        self._outbox = outbox
        self._clock = clock
        self.app: Flask | None = None
        self._server: BoundedServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return self._server.url

    def start(self) -> str:
        """Open the outbox, start reader and ticker, listen; returns the URL."""
        self.app = create_app(self.config, outbox=self._outbox, clock=self._clock)
        self._server = BoundedServer(self.app, self.config.web, name="touchpoint-edge")
        try:
            self._server.start()
        except OSError:
            shutdown(self.app)
            raise
        log.info("edge %s listening on %s", self.config.source, self.url)
        return self.url

    def stop(self) -> None:
        """End streams, stop serving, stop reader and ticker, close the outbox."""
        if self.app is None or self._server is None:
            return
        self.app.extensions[EXTENSION].hub.close()
        self._server.stop(5)
        shutdown(self.app)
        self.app = None


def serve(config: EdgeConfig) -> None:
    """``touchpoint edge``: run until Ctrl-C or SIGTERM, then shut down cleanly."""
    server = EdgeServer(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        url = server.start()
        print(f"Touchpoint edge ({config.device.role}) at {url}", flush=True)
        systemd.ready(f"serving {url}")
        stop.wait()
    except KeyboardInterrupt:
        pass
    except CatalogError as error:
        raise SystemExit(f"touchpoint edge: catalogue {config.catalog.path!r}: {error}") from None
    finally:
        systemd.stopping()
        server.stop()
        signal.signal(signal.SIGTERM, previous)
