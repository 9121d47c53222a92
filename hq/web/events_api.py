"""``POST /v1/events``: web, app, e-mail and POS systems send their CloudEvents to HQ.

One event (a JSON object) or a batch (a JSON array) of at most ``MAX_BATCH_EVENTS`` events and
``MAX_BODY_BYTES`` bytes, with ``Authorization: Bearer <token>`` from ``[hq.tokens]``. Each
event passes the same rules as over MQTT (``hq.core.intake.to_row``); its ``source`` must be
``/channels/{channel}/...`` with the channel the token belongs to. Events are stored
idempotently by ``(source, id)``; a refused one is dead-lettered with its reason, and the rest
of the batch is kept. The answer names each event's fate::

    {"accepted": [ids], "duplicates": [ids], "rejected": [{"index": 3, "id": "...", "reason": "..."}]}

200 when nothing was rejected, 207 when some were, 422 when all were; 400 for a body that is
not JSON, 401 for a missing or unknown token, 413 for a body or batch too large.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from common.config_web import WebSection
from contract.envelope import EnvelopeError
from hq.core import segment
from hq.core.intake import DEAD_RAW_BYTES, DEFAULT_BOUNDS, Bounds, decode, to_row
from hq.core.records import DeadLetter, EventRow, reason_kind
from hq.storage import Storage
from hq.web.users import bearer, token_matches

MAX_BATCH_EVENTS = 500
MAX_BODY_BYTES = 1024 * 1024  # at most [web] max_body_bytes, which the server enforces first
DEAD_TOPIC = "POST /v1/events"

bp = Blueprint("events_api", __name__, url_prefix="/v1")


def route_limit(web: WebSection) -> Callable[[Mapping[str, Any]], int]:
    """The largest body each HQ route takes: ``POST /v1/events`` and the Segment API's the server's
    most, the rest (forms, consent) ``[web] max_form_bytes``."""

    def limit(environ: Mapping[str, Any]) -> int:
        path = environ.get("PATH_INFO")
        intake = (path == "/v1/events" or path in segment.PATHS) and environ.get("REQUEST_METHOD") == "POST"
        return web.max_body_bytes if intake else web.max_form_bytes

    return limit


def channel_of_token(tokens: dict[str, str], given: str | None) -> str | None:
    """The channel whose token was given; every token is compared, in constant time each."""
    found = None
    for channel, token in sorted(tokens.items()):
        if token_matches(given, token):
            found = channel
    return found


@bp.post("/events")
def post_events() -> tuple[Response, int]:
    """Store one CloudEvent or a batch; see the module docstring for the answer."""
    channel = channel_of_token(current_app.config["HQ"].hq.tokens, bearer())
    if channel is None:
        response = jsonify(error="authentication: Authorization: Bearer <the channel's token from [hq.tokens]>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="touchpoint-hq"'
        return response, 401
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return jsonify(error=f"size: body larger than {MAX_BODY_BYTES} bytes"), 413
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return jsonify(error=f"size: body larger than {MAX_BODY_BYTES} bytes"), 413
    try:
        document = decode(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return jsonify(error=f"json: invalid JSON ({str(error)[:120]})"), 400
    batch = document if isinstance(document, list) else [document]
    if len(batch) > MAX_BATCH_EVENTS:
        return jsonify(error=f"size: more than {MAX_BATCH_EVENTS} events in one batch"), 413
    bounds = Bounds.of(current_app.config["HQ"].intake)
    outcome = intake(current_app.extensions["hq.storage"], batch, channel, datetime.now(timezone.utc), bounds)
    count_intake(outcome)
    rejected = outcome.rejected
    status = 200 if not rejected else 422 if len(rejected) == len(batch) else 207
    return jsonify(outcome.to_json()), status


@dataclass(frozen=True)
class Intake:
    """What became of one request's events."""

    accepted: tuple[str, ...]
    duplicates: tuple[str, ...]
    rejected: tuple[dict[str, Any], ...]
    types: tuple[str, ...]  # the type of every valid event, new or re-sent, for the metrics

    def to_json(self) -> dict[str, Any]:
        return {"accepted": list(self.accepted), "duplicates": list(self.duplicates), "rejected": list(self.rejected)}


def intake(
    storage: Storage,
    batch: list[Any],
    channel: str,
    now: datetime,
    bounds: Bounds = DEFAULT_BOUNDS,
    topic: str = DEAD_TOPIC,
) -> Intake:
    """Validate, store and dead-letter (under ``topic``) one batch from ``channel``; returns the answer document."""
    rows: list[EventRow] = []
    rejected: list[dict[str, Any]] = []
    dead: list[DeadLetter] = []
    for index, event in enumerate(batch):
        raw = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        try:
            row = to_row(event, raw, None, now, bounds)
            if row.channel != channel:
                raise EnvelopeError(
                    f"source: {row.source[:80]!r} is not /channels/{channel}/..., the channel of this token"
                )
        except EnvelopeError as error:
            event_id = event.get("id") if isinstance(event, dict) else None
            event_id = event_id[:64] if isinstance(event_id, str) else None
            source = event.get("source") if isinstance(event, dict) else None
            rejected.append({"index": index, "id": event_id, "reason": error.reason})
            dead.append(
                DeadLetter(
                    now,
                    topic,
                    error.reason,
                    raw.encode("utf-8", errors="replace")[:DEAD_RAW_BYTES],
                    source if isinstance(source, str) else None,
                    event_id,
                )
            )
            continue
        rows.append(row)
    held = storage.stored_keys((row.source, row.id) for row in rows)
    new: dict[tuple[str, str], EventRow] = {}
    duplicates = []
    for row in rows:
        key = (row.source, row.id)
        if key in held or key in new:
            duplicates.append(row.id)
        else:
            new[key] = row
    storage.store_events(list(new.values()))
    if dead:
        storage.store_dead_letters(dead)
    return Intake(
        tuple(row.id for row in new.values()), tuple(duplicates), tuple(rejected), tuple(row.type for row in rows)
    )


def count_intake(outcome: Intake) -> None:
    """Add one request's outcome to HQ's metrics (``hq.web.segment_api`` counts the same way)."""
    metrics = current_app.extensions["hq.metrics"]
    metrics.stored.inc(len(outcome.accepted))
    metrics.duplicates.inc(len(outcome.duplicates))
    for name, count in Counter(outcome.types).items():
        metrics.events.labels(name).inc(count)
    for kind, count in Counter(reason_kind(r["reason"]) for r in outcome.rejected).items():
        metrics.dead_letters.labels(kind).inc(count)
