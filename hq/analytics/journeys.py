"""Analytics over HQ storage: streams events out of the ``events`` table into the pure core.

No number is computed here: touchpoints (``hq.core.touchpoints``), metrics (``hq.core.report``)
and recommendations (``hq.core.recommend``) do that, over the persons storage keeps
(``hq.analytics.people``). This module reads through the :class:`hq.storage.Storage` interface only.

For the API: ``customer_journey`` answers ``GET /v1/customers/{customer}/journey``,
``touchpoint_report`` + ``report_json`` answer ``GET /v1/touchpoints``, ``recommendation_messages`` builds the retained
``recommendations`` document of each store.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from common.errors import TouchpointError
from contract.envelope import TYPE_PREFIX, utc_now_iso
from hq.analytics.people import customer_lookup, everyone
from hq.core import rollup_report
from hq.core.identity import PersonLookup, attributed
from hq.core.recommend import ProductLookup, Recommender, RecommendPolicy
from hq.core.report import MetricsPolicy, Report, Window
from hq.core.touchpoints import Touchpoint, TouchpointMap, place
from hq.storage import Storage

IDENTIFIER_FIELDS = ("customer", "session_id", "anonymous_id")  # attribution order; ingest copies them to columns


class CursorError(TouchpointError, ValueError):
    """A journey cursor that this module did not hand out."""


def touchpoint_report(
    storage: Storage, window: Window, store: str | None = None, policy: MetricsPolicy | None = None
) -> Report:
    """Touchpoint metrics, funnel and paths for the whole UTC hours around a window, counted by the
    database from its rollups (``hq.storage.report_sql``) under the persons it holds now."""
    policy = policy or MetricsPolicy()
    hours = rollup_report.whole_hours(window)
    figures = storage.rollup_report(
        rollup_report.query(hours, store, policy), functools.partial(rollup_report.arrange, store=store, policy=policy)
    )
    return rollup_report.assemble(figures, hours, store, policy)


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


def person_events(storage: Storage, graph: PersonLookup, person: str) -> list[dict[str, Any]]:
    """Every stored event attributed to a person."""
    return [e for e in storage.events_naming(graph.members(person)) if graph.attribute(e) == person]


def _maybe_integer(column: str | None) -> bool:
    """Ingest copies an integer in ``data`` to its column as text, which stitching would not accept."""
    return column is not None and column.lstrip("-").isdigit()


def customer_journey(
    storage: Storage,
    customer: str,
    *,
    tmap: TouchpointMap | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """The cross-channel timeline of the journey endpoint (docs/architecture.md); raises CursorError on a bad cursor.

    The person's events are attributed and ordered from their indexed columns alone; only the page
    (and any event whose identifier columns may hold an integer) has its ``data`` read and decoded.
    """
    tmap = tmap or TouchpointMap()
    after = _decode_cursor(cursor) if cursor is not None else None
    graph = customer_lookup(storage, customer)
    person = graph.person_of(f"customer:{customer}")
    rows = storage.journey_rows(graph.members(person))
    exact = storage.event_data([(r.source, r.id) for r in rows if any(map(_maybe_integer, r[6:]))])
    mine = []
    for row in rows:
        key = (row.source, row.id)
        data = exact[key] if key in exact else dict(zip(IDENTIFIER_FIELDS, row[6:]))
        if graph.attribute({"source": row.source, "data": data}) == person:
            mine.append(row)
    mine.sort(key=lambda r: (r.stamp, r.source, r.id))
    purchases = sorted(r.time for r in mine if r.type == TYPE_PREFIX + "purchase.completed")
    if after is not None:
        mine = [r for r in mine if (r.stamp, r.source, r.id) > after]
    page, rest = mine[:limit], mine[limit:]
    data_of = storage.event_data([(r.source, r.id) for r in page])
    events = []
    for row in page:
        data = data_of[(row.source, row.id)]
        step = place({"id": row.id, "source": row.source, "type": row.type, "data": data}, row.time, purchases, tmap)
        events.append(
            {
                "id": row.id,
                "source": row.source,
                "type": row.type,
                "time": row.stamp,
                "channel": step.touchpoint.channel if step.touchpoint else row.channel,
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
    policy: RecommendPolicy | None = None,
) -> dict[str, dict[str, Any]]:
    """Store -> its retained ``recommendations`` document, from every event up to ``now``."""
    graph = everyone(storage)
    recommender = Recommender(catalog, graph.consent_of, now, policy)
    for item in attributed(storage.read_events(), graph):
        recommender.add(item)
    return {store: recommender.message(store) for store in stores}
