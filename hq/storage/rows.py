"""Stored event rows turned back into CloudEvents envelopes, the same way for every query."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hq.core.records import EventRow
from hq.storage.base import Storage

# The columns an event is rebuilt from, in the order event_from_row takes them.
EVENT_FIELDS = "source, id, type, time, seq, channel, data"


def event_from_row(storage: Storage, row: Sequence[Any]) -> dict[str, Any]:
    """A stored event as a CloudEvents envelope again, from a row of ``EVENT_FIELDS``."""
    source, event_id, kind, time, seq, channel, data = row
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": kind,
        "time": storage.time_text(time),
        "channel": channel,
        "data": decode_data(data),
    }
    if seq is not None:
        event["seq"] = seq
    return event


def stored_event(row: EventRow) -> dict[str, Any]:
    """What the upkeep at ingest reads of a row being stored: key, type and decoded ``data``."""
    return {"id": row.id, "source": row.source, "type": row.type, "data": json.loads(row.data)}


def decode_data(value: Any) -> dict[str, Any]:
    """``data`` as a dict whichever backend returned it (JSONB arrives parsed, TEXT does not)."""
    return value if isinstance(value, dict) else json.loads(value)
