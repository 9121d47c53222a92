"""The web server of the edge and HQ (waitress with ``[web]``'s limits) and who may read ``/metrics``.

``/metrics`` answers on ``[web] metrics_listen`` (a second listener for a private network, whose
requests carry ``MONITORING`` in their WSGI environ) and elsewhere only to
``Authorization: Bearer <[web] metrics_token>``; with neither configured it is closed.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from common.config_web import WebSection

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

MONITORING = "touchpoint.monitoring"  # WSGI environ key: the request came in on [web] metrics_listen


def metrics_allowed(environ: Mapping[str, Any], token: str) -> bool:
    """Whether this request may read ``/metrics``: it came in on the monitoring listener, or it
    carries the configured bearer token (compared in constant time; an empty token never matches)."""
    if environ.get(MONITORING):
        return True
    scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    if scheme.lower() != "bearer" or not token or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


METRICS_CLOSED = "authentication: Authorization: Bearer <[web] metrics_token>, or scrape [web] metrics_listen"


# -- the server ------------------------------------------------------------------------------

RouteLimit = Callable[[Mapping[str, Any]], int]  # the largest body a request's route takes


class _Channel(HTTPChannel):
    """A connection that remembers when the request it is reading began and when its headers
    ended, so the server can close it when either takes too long (waitress itself only closes
    idle connections, and a client trickling a byte a second is never idle)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.head_from: float | None = time.monotonic()  # the first request is due from the connect
        self.body_from: float | None = None
        super().__init__(*args, **kwargs)

    def received(self, data: bytes) -> bool:
        if self.request is None and self.head_from is None:
            self.head_from = time.monotonic()
        done = super().received(data)
        partial = self.request
        if partial is None:
            self.head_from = self.body_from = None
        elif partial.headers_finished and self.body_from is None:
            self.body_from = time.monotonic()
        return bool(done)


class _Server(TcpWSGIServer):
    channel_class = _Channel

    def __init__(self, app: WSGIApp, web: WebSection, **kwargs: Any) -> None:
        self.header_timeout_s = web.header_timeout_s
        self.body_timeout_s = web.body_timeout_s
        super().__init__(app, **kwargs)

    def maintenance(self, now: float) -> None:
        """Idle connections as waitress closes them, plus requests whose head or body is late."""
        super().maintenance(now)
        clock = time.monotonic()
        for channel in list(self.active_channels.values()):
            if channel.requests or channel.will_close:
                continue  # being served, or closing anyway
            partial = channel.request
            if partial is not None and partial.headers_finished:
                late = channel.body_from is not None and clock - channel.body_from > self.body_timeout_s
            else:
                late = channel.head_from is not None and clock - channel.head_from > self.header_timeout_s
            if late:
                channel.will_close = True


def _json(start_response: StartResponse, status: str, message: str) -> list[bytes]:
    body = json.dumps({"error": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def limited(app: WSGIApp, web: WebSection, route_limit: RouteLimit) -> WSGIApp:
    """``app`` behind the request line limit (414) and each route's body limit (413), both
    answered before the app runs. waitress has read at most ``max_body_bytes`` of the body by
    then (to a temporary file above 512 KiB) and gives chunked bodies their length."""

    def limited_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        line = len(environ.get("REQUEST_METHOD", "")) + len(environ.get("REQUEST_URI", "")) + 10
        if line > web.max_request_line_bytes:
            return _json(
                start_response, "414 URI Too Long", f"request line: longer than {web.max_request_line_bytes} bytes"
            )
        length = str(environ.get("CONTENT_LENGTH") or "0")
        most = route_limit(environ)
        if not length.isdigit() or int(length) > most:
            return _json(start_response, "413 Content Too Large", f"size: body larger than {most} bytes")
        return app(environ, start_response)

    return limited_app


def monitoring(app: WSGIApp) -> WSGIApp:
    """What ``[web] metrics_listen`` serves: ``/metrics`` without a token, and ``/healthz``."""

    def monitoring_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in ("/metrics", "/healthz"):
            return _json(start_response, "404 Not Found", "this listener serves /metrics and /healthz only")
        return app({**environ, MONITORING: True}, start_response)

    return monitoring_app


class BoundedServer:
    """A WSGI app on waitress with ``[web]``'s limits, in a background thread.

    waitress reads every request (line, headers, body) on one event loop and hands only whole
    requests to the ``[web] threads`` workers, so slow or bloated clients cost a socket and
    buffer each, never a worker; headers beyond ``max_header_bytes`` are 431, bodies beyond
    ``max_body_bytes`` 413 before they are read, and a head or body slower than its timeout
    closes the connection. ``[web] metrics_listen`` is a second listener on the same loop.
    """

    def __init__(self, app: WSGIApp, web: WebSection, *, name: str, route_limit: RouteLimit | None = None) -> None:
        self.web = web
        self.name = name
        self._app = limited(app, web, route_limit or (lambda environ: web.max_form_bytes))
        self._monitoring = monitoring(self._app)
        self._map: dict[int, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._servers: list[_Server] = []

    def _adjustments(self, listen: str) -> Adjustments:
        host, _, port = listen.rpartition(":")
        return Adjustments(
            host=host.strip("[]"),
            port=int(port),
            threads=self.web.threads,
            connection_limit=self.web.connection_limit,
            channel_timeout=self.web.idle_timeout_s,
            cleanup_interval=1,
            max_request_header_size=self.web.max_header_bytes,
            max_request_body_size=self.web.max_body_bytes,
            asyncore_use_poll=True,  # select() stops at 1024 descriptors
            ident=self.name,
            expose_tracebacks=False,
        )

    def start(self) -> str:
        """Bind every listener and serve; returns the main listener's URL. Raises OSError when an
        address is taken."""
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(self.web.threads)
        listeners = [(self.web.listen, self._app)]
        if self.web.metrics_listen:
            listeners.append((self.web.metrics_listen, self._monitoring))
        try:
            for listen, app in listeners:
                adj = self._adjustments(listen)
                self._servers.append(_Server(app, self.web, map=self._map, dispatcher=dispatcher, adj=adj))
        except OSError:
            wasyncore.close_all(self._map)
            dispatcher.shutdown()
            raise
        self._dispatcher = dispatcher
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-http", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        return self._url_of(self._servers[0])

    @property
    def monitoring_url(self) -> str | None:
        return self._url_of(self._servers[1]) if len(self._servers) > 1 else None

    @staticmethod
    def _url_of(server: _Server) -> str:
        return f"http://{server.effective_host}:{server.effective_port}/"

    def _loop(self) -> None:
        while not self._stop.is_set():
            wasyncore.loop(timeout=0.2, map=self._map, use_poll=True, count=1)
        wasyncore.close_all(self._map)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, close every connection, let the workers finish (at most ``timeout_s``)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout_s)
        self._dispatcher.shutdown(timeout=timeout_s)
        self._thread = None
