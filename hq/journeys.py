"""Analytics over HQ storage: streams events out of the ``events`` table into the pure core.

No number is computed here: stitching (``hq.identity``), touchpoints (``hq.touchpoints``),
metrics (``hq.touchpoint_metrics``) and recommendations (``hq.recommend``) do that. This module
reads through the :class:`hq.storage.Storage` interface only, pages by primary key so memory stays
flat at a million events (the core does not need time order), and turns rows back into envelopes.

For the API: ``customer_journey`` answers ``GET /v1/customers/{customer}/journey``,
``touchpoint_report`` + ``report_json`` answer ``GET /v1/touchpoints``, ``recommendation_messages``
builds the retained ``recommendations`` document of each store.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from hq.identity import LINK_EVENTS, IdentityGraph, StitchPolicy, attributed, stitch
from hq.recommend import ProductLookup, Recommender, RecommendPolicy
from hq.sqlstore import decode_data
from hq.storage import Storage
from hq.touchpoint_metrics import MetricsPolicy, Report, Window, compute
from hq.touchpoints import Touchpoint, TouchpointMap, journey
from sync.envelope import TYPE_PREFIX, utc_now_iso
from touchpoint.errors import TouchpointError

PAGE = 5000
COLUMNS = "source, id, type, time, seq, channel, data"


class CursorError(TouchpointError, ValueError):
    """A journey cursor that this module did not hand out."""


def _envelope(storage: Storage, row: Sequence[Any]) -> dict[str, Any]:
    source, event_id, kind, time, seq, channel, data = row
    event = {"specversion": "1.0", "id": event_id, "source": source, "type": kind,
             "time": utc_now_iso(storage.time_value(time)), "channel": channel, "data": decode_data(data)}
    if seq is not None:
        event["seq"] = seq
    return event


def read_events(storage: Storage, *, start: datetime | None = None, end: datetime | None = None,
                names: Iterable[str] | None = None, page: int = PAGE) -> Iterator[dict[str, Any]]:
    """Every stored event with ``start <= time < end`` (and one of ``names``), in key order."""
    where, params = [], []
    if start is not None:
        where.append("time >= ?")
        params.append(storage.time_param(start))
    if end is not None:
        where.append("time < ?")
        params.append(storage.time_param(end))
    if names is not None:
        types = [TYPE_PREFIX + n for n in names]
        where.append(f"type IN ({', '.join('?' * len(types))})")
        params.extend(types)
    last: tuple[str, str] | None = None
    while True:
        clauses = [*where, "(source, id) > (?, ?)"] if last else where
        sql = f"SELECT {COLUMNS} FROM events"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = storage.fetchall(f"{sql} ORDER BY source, id LIMIT {int(page)}", [*params, *(last or ())])
        for row in rows:
            yield _envelope(storage, row)
        if len(rows) < page:
            return
        last = (rows[-1][0], rows[-1][1])


def identity_graph(storage: Storage, policy: StitchPolicy | None = None) -> IdentityGraph:
    """Persons from every stored link event (a few percent of all events)."""
    return stitch(read_events(storage, names=LINK_EVENTS), policy)


def touchpoint_report(storage: Storage, window: Window, store: str | None = None,
                      policy: MetricsPolicy | None = None, graph: IdentityGraph | None = None) -> Report:
    """Touchpoint metrics, funnel and paths for a window, with the purchases that may follow it."""
    policy = policy or MetricsPolicy()
    graph = graph or identity_graph(storage)
    events = read_events(storage, start=window.start, end=window.end + policy.conversion_window)
    return compute(attributed(events, graph), window, store, policy)


def report_json(report: Report) -> dict[str, Any]:
    """A report as JSON: touchpoints as ``channel/place/kind``, times in RFC 3339."""
    def convert(value: Any) -> Any:
        if isinstance(value, Touchpoint):
            return str(value)
        if isinstance(value, datetime):
            return utc_now_iso(value)
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value

    return convert(report)


def _encode_cursor(event: dict[str, Any]) -> str:
    key = json.dumps([event["time"], event["source"], event["id"]]).encode()
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str, str]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise CursorError(f"cursor {cursor[:40]!r} was not handed out by this API") from None
    if not (isinstance(key, list) and len(key) == 3 and all(isinstance(k, str) for k in key)):
        raise CursorError(f"cursor {cursor[:40]!r} was not handed out by this API")
    return key[0], key[1], key[2]


def events_naming(storage: Storage, identifiers: Iterable[str]) -> list[dict[str, Any]]:
    """Every stored event that carries one of these typed identifiers in an indexed column: after
    ``changed = graph.add_events(batch)``, these are the events to re-attribute."""
    idents = sorted(set(identifiers))
    clauses, params = [], []
    for kind, column in (("customer", "customer"), ("session", "session_id"), ("anon", "anonymous_id")):
        values = [i.split(":", 1)[1] for i in idents if i.startswith(kind + ":")]
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if not clauses:
        return []
    rows = storage.fetchall(f"SELECT {COLUMNS} FROM events WHERE {' OR '.join(clauses)}", params)
    return [_envelope(storage, row) for row in rows]


def person_events(storage: Storage, graph: IdentityGraph, person: str) -> list[dict[str, Any]]:
    """Every stored event attributed to a person."""
    return [e for e in events_naming(storage, graph.members(person)) if graph.attribute(e) == person]


def customer_journey(storage: Storage, graph: IdentityGraph, customer: str, *, tmap: TouchpointMap | None = None,
                     cursor: str | None = None, limit: int = 100) -> dict[str, Any]:
    """The cross-channel timeline of DESIGN.md's journey endpoint; raises CursorError on a bad cursor."""
    tmap = tmap or TouchpointMap()
    person = graph.person_of(f"customer:{customer}")
    events = {e["id"]: e for e in person_events(storage, graph, person)}
    timeline = []
    for step in journey(events.values(), tmap):
        event = events[step.event_id]
        channel = step.touchpoint.channel if step.touchpoint else event["channel"]
        timeline.append({"id": event["id"], "source": event["source"], "type": event["type"],
                         "time": event["time"], "channel": channel, "phase": step.phase, "data": event["data"]})
    timeline.sort(key=lambda e: (e["time"], e["source"], e["id"]))
    if cursor is not None:
        after = _decode_cursor(cursor)
        timeline = [e for e in timeline if (e["time"], e["source"], e["id"]) > after]
    page, rest = timeline[:limit], timeline[limit:]
    return {"customer": customer, "events": page, "next": _encode_cursor(page[-1]) if rest else None}


def recommendation_messages(storage: Storage, stores: Iterable[str], catalog: ProductLookup, now: datetime,
                            graph: IdentityGraph | None = None,
                            policy: RecommendPolicy | None = None) -> dict[str, dict[str, Any]]:
    """Store -> its retained ``recommendations`` document, from every event up to ``now``."""
    graph = graph or identity_graph(storage)
    recommender = Recommender(catalog, graph.consent_of, now, policy)
    for item in attributed(read_events(storage), graph):
        recommender.add(item)
    return {store: recommender.message(store) for store in stores}
