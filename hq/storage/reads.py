"""The event reads that analytics and the API need, as named methods (mixed into ``SqlStorage``).

Rows come back as CloudEvents envelopes (``hq.storage.rows``), times as the API writes them.
Full scans page by key so memory stays flat at a million events; everything else is an indexed
lookup: by time range, by the identifier columns ingest copies out of ``data``, by primary key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from contract.envelope import TYPE_PREFIX
from hq.core.records import JourneyRow
from hq.storage.base import Storage
from hq.storage.rows import EVENT_FIELDS, decode_data, event_from_row

PAGE = 5000
# How read_events pages: SQLite by rowid in table order, no index (with statistics, SQLite would
# pick the (type, time) index and sort every page: 152 s instead of 37 s); PostgreSQL by primary key.
KEYSET = {"sqlite": ("rowid", "events NOT INDEXED"), "postgres": ("source, id", "events")}
KEY_CHUNK = 400  # (source, id) pairs per lookup, well under every backend's parameter limit
IDENTIFIER_COLUMNS = (("customer", "customer"), ("session", "session_id"), ("anon", "anonymous_id"))


class EventReads(Storage):
    """Reads of the ``events`` table; the SQL backend supplies ``fetchall`` and time conversion."""

    def read_events(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        names: Iterable[str] | None = None,
        page: int = PAGE,
    ) -> Iterator[dict[str, Any]]:
        where, params = [], []
        if start is not None:
            where.append("time >= ?")
            params.append(self.time_param(start))
        if end is not None:
            where.append("time < ?")
            params.append(self.time_param(end))
        if names is not None:
            types = [TYPE_PREFIX + n for n in names]
            where.append(f"type IN ({', '.join('?' * len(types))})")
            params.extend(types)
        key, table = KEYSET[self.dialect]
        last: tuple[Any, ...] = ()
        while True:
            clauses = [*where, f"({key}) > ({', '.join('?' * len(last))})"] if last else where
            sql = f"SELECT {EVENT_FIELDS}, {key} FROM {table}"
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
            rows = self.fetchall(f"{sql} ORDER BY {key} LIMIT {int(page)}", [*params, *last])
            for row in rows:
                yield event_from_row(self, row[:7])
            if len(rows) < page:
                return
            last = tuple(rows[-1][7:])

    def events_between(self, start: datetime, end: datetime) -> list[tuple[dict[str, Any], datetime]]:
        rows = self.fetchall(
            f"SELECT {EVENT_FIELDS} FROM events WHERE time >= ? AND time < ?",
            (self.time_param(start), self.time_param(end)),
        )
        return [(event_from_row(self, row), self.time_value(row[3]) or start) for row in rows]

    def events_naming(self, identifiers: Iterable[str]) -> list[dict[str, Any]]:
        where, params = _naming(identifiers)
        if not where:
            return []
        return [
            event_from_row(self, row)
            for row in self.fetchall(f"SELECT {EVENT_FIELDS} FROM events WHERE {where}", params)
        ]

    def journey_rows(self, identifiers: Iterable[str]) -> list[JourneyRow]:
        where, params = _naming(identifiers)
        if not where:
            return []
        rows = self.fetchall(
            f"SELECT source, id, type, time, channel, customer, session_id, anonymous_id FROM events WHERE {where}",
            params,
        )
        return [
            JourneyRow(
                source, event_id, kind, self.time_value(time) or datetime.min, self.time_text(time), channel, *ids
            )
            for source, event_id, kind, time, channel, *ids in rows
        ]

    def event_data(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Primary-key lookups of each source and id among them (a person's events come from a few
        sources), exact pairs kept."""
        wanted, found = set(keys), {}
        for i in range(0, len(keys), KEY_CHUNK):
            chunk = keys[i : i + KEY_CHUNK]
            sources, ids = sorted({s for s, _ in chunk}), sorted({e for _, e in chunk})
            rows = self.fetchall(
                f"SELECT source, id, data FROM events WHERE source IN ({', '.join('?' * len(sources))})"
                f" AND id IN ({', '.join('?' * len(ids))})",
                [*sources, *ids],
            )
            found.update({(s, e): decode_data(d) for s, e, d in rows if (s, e) in wanted})
        return found

    def stored_keys(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        by_source: dict[str, set[str]] = {}
        for source, event_id in keys:
            by_source.setdefault(source, set()).add(event_id)
        held: set[tuple[str, str]] = set()
        for source, ids in by_source.items():
            found = self.fetchall(
                f"SELECT id FROM events WHERE source = ? AND id IN ({', '.join('?' * len(ids))})",
                [source, *sorted(ids)],
            )
            held.update((source, event_id) for (event_id,) in found)
        return held

    def stores(self) -> list[str]:
        rows = self.fetchall(
            "SELECT store FROM devices UNION SELECT DISTINCT store FROM events WHERE store IS NOT NULL"
        )
        return sorted({r[0] for r in rows if r[0]})


def _naming(identifiers: Iterable[str]) -> tuple[str, list[str]]:
    """The WHERE clause (empty when none) matching events whose indexed columns carry one of these
    typed identifiers."""
    idents = sorted(set(identifiers))
    clauses, params = [], []
    for kind, column in IDENTIFIER_COLUMNS:
        values = [i.split(":", 1)[1] for i in idents if i.startswith(kind + ":")]
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    return " OR ".join(clauses), params
