"""The Segment HTTP Tracking API at HQ's root: ``POST /v1/batch``, ``/v1/track``, ``/v1/identify``,
``/v1/page``, ``/v1/screen``, ``/v1/alias``, ``/v1/group`` (and analytics.js's ``/v1/b``, ``/v1/t``,
``/v1/i``, ``/v1/p``, ``/v1/s``, ``/v1/a``, ``/v1/g``), so a shop points its Segment or RudderStack
library at HQ instead of writing code for ``POST /v1/events``.

The write key is a channel token of ``[hq.tokens]``, as the Basic auth user name (what the
libraries send), a bearer token, or ``writeKey`` in the body; it decides the channel. Bodies
may be gzip (``Content-Encoding: gzip``, RudderStack's default); 500 KB per batch and 32 KB per
message after decompression. Answers as the spec: 400 for a body that is not JSON, not the
call's shape or over a limit, 401 for a missing or unknown key, else 200, with every message
either stored (``hq.core.segment`` maps it, ``hq.web.events_api.intake`` stores it) or
dead-lettered (topic ``POST /v1/batch`` or the call's path) with its reason. CORS is open:
analytics.js posts from the shop's own origin.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from contract.envelope import EnvelopeError
from hq.core.intake import DEAD_RAW_BYTES, Bounds, compact_json, decode
from hq.core.records import DeadLetter, reason_kind
from hq.core.segment import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    SHORT_PATHS,
    TYPES,
    SegmentRequestError,
    SegmentRules,
    messages_of,
    to_events,
)
from hq.web.events_api import channel_of_token, count_intake, intake

bp = Blueprint("segment_api", __name__, url_prefix="/v1")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding, X-Retry-Count",
    "Access-Control-Max-Age": "600",
}


def post_call(call: str) -> tuple[Response, int]:
    """One Segment call or batch; see the module docstring for the answers."""
    header_key = _header_key()
    if header_key is not None and _channel(header_key) is None:
        return _unauthorized()
    try:
        document = decode(_body(MAX_BATCH_BYTES if call == "batch" else MAX_MESSAGE_BYTES))
    except SegmentRequestError as error:
        return jsonify(success=False, error=error.reason), 400
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return jsonify(success=False, error=f"json: invalid JSON ({str(error)[:120]})"), 400
    key = header_key if header_key is not None else document.get("writeKey") if isinstance(document, dict) else None
    channel = _channel(key if isinstance(key, str) else None)
    if channel is None:
        return _unauthorized()
    try:
        messages, sent_at = messages_of(document, call)
    except SegmentRequestError as error:
        return jsonify(success=False, error=error.reason), 400
    config = current_app.config["HQ"].hq
    rules = SegmentRules(channel, config.handoff_url, frozenset(t.strip() for t in config.traits.split(",") if t))
    now = datetime.now(timezone.utc)
    topic = f"POST {request.path}"
    events: list[Any] = []
    refused: list[dict[str, Any]] = []
    dead: list[DeadLetter] = []
    for index, message in enumerate(messages):
        try:
            events.extend(to_events(message, rules, now, sent_at))
        except EnvelopeError as error:
            raw = compact_json(message).encode("utf-8", errors="replace")[:DEAD_RAW_BYTES]
            found = message.get("messageId") if isinstance(message, dict) else None
            message_id = str(found)[:64] if isinstance(found, (str, int)) else None
            refused.append({"index": index, "id": message_id, "reason": error.reason})
            dead.append(DeadLetter(now, topic, error.reason, raw, None, message_id))
    storage = current_app.extensions["hq.storage"]
    outcome = intake(storage, events, channel, now, Bounds.of(current_app.config["HQ"].intake), topic)
    count_intake(outcome)
    if dead:
        storage.store_dead_letters(dead)
        for kind, count in Counter(reason_kind(r["reason"]) for r in refused).items():
            current_app.extensions["hq.metrics"].dead_letters.labels(kind).inc(count)
    return jsonify(
        success=True,
        accepted=len(outcome.accepted),
        duplicates=len(outcome.duplicates),
        rejected=refused + [dict(r, index=None) for r in outcome.rejected],
    ), 200


def _header_key() -> str | None:
    """The write key from ``Authorization`` (Basic user name or bearer token), None without one."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return "" if header else None


def _channel(key: str | None) -> str | None:
    return channel_of_token(current_app.config["HQ"].hq.tokens, key or None)


def _unauthorized() -> tuple[Response, int]:
    response = jsonify(success=False, error="authentication: the write key is a channel token from [hq.tokens]")
    response.headers["WWW-Authenticate"] = 'Basic realm="touchpoint-hq"'
    return response, 401


def _body(limit: int) -> bytes:
    """The request body, gunzipped when it says so; raises SegmentRequestError past ``limit`` bytes."""
    too_big = SegmentRequestError(f"size: body larger than {limit} bytes")
    if (request.content_length or 0) > limit:
        raise too_big
    body = request.stream.read(limit + 1)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error:
            raise SegmentRequestError("gzip: the body is not gzip") from None
    elif encoding not in ("", "identity"):
        raise SegmentRequestError(f"encoding: {encoding[:20]!r} is not gzip")
    if len(body) > limit:
        raise too_big
    return body


@bp.after_request
def open_cors(response: Response) -> Response:
    """analytics.js posts from the shop's pages, another origin than HQ's."""
    response.headers.update(CORS_HEADERS)
    return response


for _call in (*TYPES, "batch"):
    bp.add_url_rule(f"/{_call}", _call, lambda call=_call: post_call(call), methods=["POST"])
for _short, _call in SHORT_PATHS.items():
    bp.add_url_rule(f"/{_short}", f"{_call}_short", lambda call=_call: post_call(call), methods=["POST"])
