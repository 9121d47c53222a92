"""The ``[web]`` section both web servers read (edge and HQ) and HQ's ``[intake]`` bounds.

Apart from ``common.config`` so that the loader stays one module's worth; the limits here are
what ``common.webserver`` enforces and README's security section lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.config_checks import at_least, checked, host_port, web_url
from common.errors import ConfigError

LOOPBACK = ("127.", "localhost:", "[::1]:", "::1:")
SWITCHES = {"auto": None, "true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False}


def optional_host_port(value: Any) -> str | None:
    return None if value == "" else host_port(value)


def switch(value: Any) -> str | None:
    return None if str(value).lower() in SWITCHES else "auto, true or false"


@dataclass(frozen=True)
class WebSection:
    listen: str = checked("127.0.0.1:8080", host_port, "address of the web server")
    threads: int = checked(32, at_least(4), "worker threads; each open screen holds one for SSE")
    handoff_url: str = checked(
        "https://touchpoint.example/h/",
        web_url,
        "edge: the web shop page a hand-off QR code opens; the token is appended",
    )
    metrics_token: str = checked(
        "", None, "bearer token for /metrics on [web] listen; empty: /metrics only on metrics_listen"
    )
    metrics_listen: str = checked(
        "", optional_host_port, "HOST:PORT serving only /metrics and /healthz, without a token; empty: none"
    )
    secure_cookies: str = checked(
        "auto", switch, "session cookies only over HTTPS (Secure); auto: on unless [web] listen is loopback"
    )
    max_request_line_bytes: int = checked(8192, at_least(256), "longest request line; longer is 414")
    max_header_bytes: int = checked(32768, at_least(1024), "most bytes of request line and headers; more is 431")
    max_body_bytes: int = checked(
        1024 * 1024, at_least(65536), "largest body the server reads (HQ: POST /v1/events); larger is 413"
    )
    max_form_bytes: int = checked(65536, at_least(1024), "largest body of every other route; larger is 413")
    header_timeout_s: float = checked(10.0, at_least(0.5), "the request line and headers must arrive within this")
    body_timeout_s: float = checked(30.0, at_least(0.5), "the body must arrive within this after the headers")
    idle_timeout_s: int = checked(60, at_least(1), "a keep-alive connection without a request is closed after this")
    connection_limit: int = checked(500, at_least(10), "open connections; beyond, new ones wait in the backlog")
    max_streams: int = checked(16, at_least(1), "edge: open /api/stream streams, at most half of threads; 503 beyond")

    def __post_init__(self) -> None:
        if self.max_form_bytes > self.max_body_bytes:
            raise ConfigError("web.max_form_bytes", self.max_form_bytes, "at most web.max_body_bytes")

    @property
    def stream_limit(self) -> int:
        """Event streams served at once: ``max_streams``, never more than half the worker threads,
        so that screens, staff and ``/api/status`` always find one."""
        return min(self.max_streams, self.threads // 2)

    @property
    def loopback(self) -> bool:
        """Whether ``listen`` is a loopback address (then cookies may travel without TLS)."""
        return self.listen.startswith(LOOPBACK)

    @property
    def cookies_secure(self) -> bool:
        """``secure_cookies`` resolved: auto is on unless the server listens on loopback."""
        chosen = SWITCHES[str(self.secure_cookies).lower()]
        return (not self.loopback) if chosen is None else chosen


@dataclass(frozen=True)
class IntakeSection:
    """HQ's bounds on what an event may claim, checked at MQTT and HTTP intake alike."""

    max_future_s: int = checked(86400, at_least(0), "an event time further ahead of HQ's clock is dead-lettered")
    max_age_days: int = checked(730, at_least(1), "an event time older than this many days is dead-lettered")
    seq_window: int = checked(
        1_000_000, at_least(1000), "a seq further than this beyond the device's contiguous seq is dead-lettered"
    )
