"""The production web server of ``touchpoint edge``: cheroot, one thread per open connection.

Server-sent event streams hold their thread for as long as a screen is open, so ``[web] threads``
must cover every screen plus a few for API calls. Shutdown ends the streams first, then stops the
server, the reader and the ticker, then closes the outbox.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from cheroot import wsgi
from flask import Flask

from common import systemd
from common.config import EdgeConfig
from contract.catalog import CatalogError
from kiosk.app import create_app, shutdown
from kiosk.edge import EXTENSION
from sync.outbox import Outbox

log = logging.getLogger(__name__)


class EdgeServer:
    """The edge app on cheroot in a background thread: ``start()`` returns the URL, ``stop()`` ends it."""

    def __init__(
        self, config: EdgeConfig, *, outbox: Outbox | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self.config = config
        self._outbox = outbox
        self._clock = clock
        self.app: Flask | None = None
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.bind_addr[:2]
        return f"http://{host}:{port}/"

    def start(self) -> str:
        """Open the outbox, start reader and ticker, listen; returns the URL."""
        self.app = create_app(self.config, outbox=self._outbox, clock=self._clock)
        host, _, port = self.config.web.listen.rpartition(":")
        self._server = wsgi.Server(
            (host, int(port)),
            self.app,
            numthreads=self.config.web.threads,
            server_name="touchpoint-edge",
            shutdown_timeout=5,
        )
        try:
            self._server.prepare()
        except OSError:
            shutdown(self.app)
            raise
        self._thread = threading.Thread(target=self._server.serve, name="edge-http", daemon=True)
        self._thread.start()
        log.info("edge %s listening on %s", self.config.source, self.url)
        return self.url

    def stop(self) -> None:
        """End streams, stop serving, stop reader and ticker, close the outbox."""
        if self.app is None or self._server is None:
            return
        self.app.extensions[EXTENSION].hub.close()
        self._server.stop()
        if self._thread:
            self._thread.join(10)
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
