"""What both web servers share: who may read ``/metrics``.

``/metrics`` answers on ``[web] metrics_listen`` (a second listener for a private network, whose
requests carry ``MONITORING`` in their WSGI environ) and elsewhere only to
``Authorization: Bearer <[web] metrics_token>``; with neither configured it is closed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

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
