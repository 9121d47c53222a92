"""Analytics over HQ storage: streams events out of the ``events`` table into the pure core.

No number is computed here: stitching (``hq.identity``), touchpoints (``hq.touchpoints``),
metrics (``hq.touchpoint_metrics``) and recommendations (``hq.recommend``) do that. This module
reads through the :class:`hq.storage.Storage` interface only, pages by primary key so memory stays
flat at a million events (the core does not need time order), and turns rows back into envelopes.

For the API: ``customer_journey`` answers ``GET /v1/customers/{customer}/journey``,
``report_facts`` (read without holding the identity graph) + ``hq.touchpoint_metrics.report`` +
``report_json`` answer ``GET /v1/touchpoints`` (``touchpoint_report`` does the first two for a
caller that has a graph), ``recommendation_messages`` builds the retained ``recommendations``
document of each store.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from common.errors import TouchpointError
from contract.envelope import TYPE_PREFIX, utc_now_iso
from hq.analytics.hourly_facts import HourlyFacts
from hq.core.facts import Facts
from hq.core.identity import LINK_EVENTS, IdentityGraph, StitchPolicy, attributed, stitch
from hq.core.recommend import ProductLookup, Recommender, RecommendPolicy
from hq.core.report import MetricsPolicy, Report, Window, report
from hq.core.touchpoints import Touchpoint, TouchpointMap, place
from hq.storage import Storage
from hq.storage.sql import EVENT_FIELDS, decode_data, event_from_row

PAGE = 5000
IDENTIFIER_FIELDS = ("customer", "session_id", "anonymous_id")  # attribution order; ingest copies them to columns
KEYS = "source, id, type, time, channel, " + ", ".join(IDENTIFIER_FIELDS)
# How read_events pages: SQLite by rowid in table order, no index (with statistics, SQLite would
# pick the (type, time) index and sort every page: 152 s instead of 37 s); PostgreSQL by primary key.
KEYSET = {"sqlite": ("rowid", "events NOT INDEXED"), "postgres": ("source, id", "events")}
KEY_CHUNK = 400  # (source, id) pairs per lookup, well under every backend's parameter limit


class CursorError(TouchpointError, ValueError):
    """A journey cursor that this module did not hand out."""


def read_events(
    storage: Storage,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    names: Iterable[str] | None = None,
    page: int = PAGE,
) -> Iterator[dict[str, Any]]:
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
    key, table = KEYSET[storage.dialect]
    last: tuple[Any, ...] = ()
    while True:
        clauses = [*where, f"({key}) > ({', '.join('?' * len(last))})"] if last else where
        sql = f"SELECT {EVENT_FIELDS}, {key} FROM {table}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = storage.fetchall(f"{sql} ORDER BY {key} LIMIT {int(page)}", [*params, *last])
        for row in rows:
            yield event_from_row(storage, row[:7])
        if len(rows) < page:
            return
        last = tuple(rows[-1][7:])


def identity_graph(storage: Storage, policy: StitchPolicy | None = None) -> IdentityGraph:
    """Persons from every stored link event (a few percent of all events)."""
    return stitch(read_events(storage, names=LINK_EVENTS), policy)


def touchpoint_report(
    storage: Storage,
    window: Window,
    store: str | None = None,
    policy: MetricsPolicy | None = None,
    graph: IdentityGraph | None = None,
    facts: HourlyFacts | None = None,
) -> Report:
    """Touchpoint metrics, funnel and paths for a window, with the purchases that may follow it.

    ``facts`` is the web process's cache; without one, every hour is read (the cold cost)."""
    policy = policy or MetricsPolicy()
    graph = graph or identity_graph(storage)
    inside, after = report_facts(window, policy, facts or HourlyFacts(storage, policy.tmap, graph.policy))
    return report(inside, after, window, store, policy, graph.stitched())


def report_facts(window: Window, policy: MetricsPolicy, facts: HourlyFacts) -> tuple[list[Facts], list[Facts]]:
    """The facts of a window's events and of the conversion window after it. They do not depend on
    the identity graph, so a web process reads them (the slow part when cold) without holding it."""
    inside, after = facts.between((window.start, window.end), (window.end, window.end + policy.conversion_window))
    return inside, after


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


def _naming(identifiers: Iterable[str]) -> tuple[str, list[str]]:
    """The WHERE clause (empty when none) matching events whose indexed columns carry one of these
    typed identifiers."""
    idents = sorted(set(identifiers))
    clauses, params = [], []
    for kind, column in (("customer", "customer"), ("session", "session_id"), ("anon", "anonymous_id")):
        values = [i.split(":", 1)[1] for i in idents if i.startswith(kind + ":")]
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    return " OR ".join(clauses), params


def events_naming(storage: Storage, identifiers: Iterable[str]) -> list[dict[str, Any]]:
    """Every stored event that carries one of these typed identifiers in an indexed column: after
    ``changed = graph.add_events(batch)``, these are the events to re-attribute."""
    where, params = _naming(identifiers)
    if not where:
        return []
    rows = storage.fetchall(f"SELECT {EVENT_FIELDS} FROM events WHERE {where}", params)
    return [event_from_row(storage, row) for row in rows]


def person_events(storage: Storage, graph: IdentityGraph, person: str) -> list[dict[str, Any]]:
    """Every stored event attributed to a person."""
    return [e for e in events_naming(storage, graph.members(person)) if graph.attribute(e) == person]


def _data_of(storage: Storage, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``data`` of the events with these ``(source, id)`` keys: primary-key lookups of each source
    and id among them (a person's events come from a few sources), exact pairs kept."""
    wanted, found = set(keys), {}
    for i in range(0, len(keys), KEY_CHUNK):
        chunk = keys[i : i + KEY_CHUNK]
        sources, ids = sorted({s for s, _ in chunk}), sorted({e for _, e in chunk})
        rows = storage.fetchall(
            f"SELECT source, id, data FROM events WHERE source IN ({', '.join('?' * len(sources))})"
            f" AND id IN ({', '.join('?' * len(ids))})",
            [*sources, *ids],
        )
        found.update({(s, e): decode_data(d) for s, e, d in rows if (s, e) in wanted})
    return found


def _maybe_integer(column: str | None) -> bool:
    """Ingest copies an integer in ``data`` to its column as text, which stitching would not accept."""
    return column is not None and column.lstrip("-").isdigit()


def customer_journey(
    storage: Storage,
    graph: IdentityGraph,
    customer: str,
    *,
    tmap: TouchpointMap | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """The cross-channel timeline of DESIGN.md's journey endpoint; raises CursorError on a bad cursor.

    The person's events are attributed and ordered from their indexed columns alone; only the page
    (and any event whose identifier columns may hold an integer) has its ``data`` read and decoded.
    """
    tmap = tmap or TouchpointMap()
    after = _decode_cursor(cursor) if cursor is not None else None
    person = graph.person_of(f"customer:{customer}")
    where, params = _naming(graph.members(person))
    rows = storage.fetchall(f"SELECT {KEYS} FROM events WHERE {where}", params) if where else []
    exact = _data_of(storage, [(r[0], r[1]) for r in rows if any(_maybe_integer(v) for v in r[5:])])
    mine = []
    for source, event_id, kind, time, channel, *idents in rows:
        key = (source, event_id)
        data = exact[key] if key in exact else dict(zip(IDENTIFIER_FIELDS, idents))
        if graph.attribute({"source": source, "data": data}) == person:
            mine.append((storage.time_text(time), source, event_id, kind, channel, time))
    mine.sort()
    purchases = sorted(storage.time_value(m[5]) for m in mine if m[3] == TYPE_PREFIX + "purchase.completed")
    if after is not None:
        mine = [m for m in mine if m[:3] > after]
    page, rest = mine[:limit], mine[limit:]
    data_of = _data_of(storage, [(source, event_id) for _, source, event_id, *_ in page])
    events = []
    for stamp, source, event_id, kind, channel, time in page:
        data = data_of[(source, event_id)]
        step = place(
            {"id": event_id, "source": source, "type": kind, "data": data}, storage.time_value(time), purchases, tmap
        )
        events.append(
            {
                "id": event_id,
                "source": source,
                "type": kind,
                "time": stamp,
                "channel": step.touchpoint.channel if step.touchpoint else channel,
                "phase": step.phase,
                "data": data,
            }
        )
    return {"customer": customer, "events": events, "next": _encode_cursor(events[-1]) if rest else None}


def recommendation_messages(
    storage: Storage,
    stores: Iterable[str],
    catalog: ProductLookup,
    now: datetime,
    graph: IdentityGraph | None = None,
    policy: RecommendPolicy | None = None,
) -> dict[str, dict[str, Any]]:
    """Store -> its retained ``recommendations`` document, from every event up to ``now``."""
    graph = graph or identity_graph(storage)
    recommender = Recommender(catalog, graph.consent_of, now, policy)
    for item in attributed(read_events(storage), graph):
        recommender.add(item)
    return {store: recommender.message(store) for store in stores}
