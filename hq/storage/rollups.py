"""Touchpoint rollups kept in the database: each UTC hour's report facts, current as events are stored.

Mixed into ``SqlStorage``. The transaction that stores events also files the facts of the new
ones (``hq.core.facts.facts_by_hour``, the same code the in-memory report oracle runs) into the
``rollup_*`` tables, merging with what the hour already holds: a session part's start is the
earlier, its end the later, its GTINs and identifiers the union, dwell times and ratings counted
per value, a request's first ask and answer the earliest. Every merge is commutative, so the
tables do not depend on arrival order or on which worker stored a batch, and only new events are
filed (``_insert_events`` knows which), so a re-sent batch counts nothing twice.

Erasure deletes events, which no merge can take back: the hours it touched are filed again from
the events that remain (``_refile_hours``). Rows hold attribution identifiers, never persons:
a late link changes ``persons`` and the next report reads it (``hq.storage.report_sql``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from hq.core.facts import Facts, Part, facts_by_hour
from hq.core.identity import StitchPolicy
from hq.core.records import hour_start, micros
from hq.storage.base import Cursor, Storage

POLICY = StitchPolicy()
BACKFILL_HOURS = 6  # hours filed per transaction
ROLLUP_LOCK = 7461636803  # pg advisory lock: ingest's filing shares it, refiling takes it alone
# Columns of each upsert's row that are its primary key (never null): the order rows are written in.
KEY_LENGTH = {"session": 3, "seen": 4, "ident": 4, "dwell": 3, "rating": 4, "size": 4, "purchase": 4, "pos": 4}
ROLLUP_TABLES = (
    "rollup_sessions",
    "rollup_seen",
    "rollup_idents",
    "rollup_dwell",
    "rollup_ratings",
    "rollup_sizes",
    "rollup_purchases",
    "rollup_pos",
)


def _upserts(least: str, greatest: str) -> dict[str, str]:
    """The merging statements, with the dialect's two-argument min and max."""
    return {
        "session": (
            "INSERT INTO rollup_sessions (hour, point, skey, visit_day, ident, store, start_us, end_us, ended_us,"
            " ended_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hour, point, skey) DO UPDATE SET"
            f" start_us = {least}(rollup_sessions.start_us, excluded.start_us),"
            f" end_us = {greatest}(rollup_sessions.end_us, excluded.end_us),"
            " ended_us = CASE WHEN excluded.ended_us IS NOT NULL AND (rollup_sessions.ended_us IS NULL OR"
            " (excluded.ended_us, excluded.ended_s) > (rollup_sessions.ended_us, rollup_sessions.ended_s))"
            " THEN excluded.ended_us ELSE rollup_sessions.ended_us END,"
            " ended_s = CASE WHEN excluded.ended_us IS NOT NULL AND (rollup_sessions.ended_us IS NULL OR"
            " (excluded.ended_us, excluded.ended_s) > (rollup_sessions.ended_us, rollup_sessions.ended_s))"
            " THEN excluded.ended_s ELSE rollup_sessions.ended_s END"
        ),
        "seen": "INSERT INTO rollup_seen (hour, point, skey, gtin) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        "ident": "INSERT INTO rollup_idents (hour, point, skey, ident) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        "dwell": (
            "INSERT INTO rollup_dwell (hour, point, seconds, n) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (hour, point, seconds) DO UPDATE SET n = rollup_dwell.n + excluded.n"
        ),
        "rating": (
            "INSERT INTO rollup_ratings (hour, point, scale, score, n) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (hour, point, scale, score) DO UPDATE SET n = rollup_ratings.n + excluded.n"
        ),
        "size": (
            "INSERT INTO rollup_sizes (hour, store, request_id, what, first_us) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (hour, store, request_id, what) DO UPDATE SET"
            f" first_us = {least}(rollup_sizes.first_us, excluded.first_us)"
        ),
        "purchase": (
            "INSERT INTO rollup_purchases (hour, ident, gtin, at_us) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
        ),
        "pos": "INSERT INTO rollup_pos (hour, store, gtin, at_us) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
    }


UPSERTS = {"sqlite": _upserts("MIN", "MAX"), "postgres": _upserts("LEAST", "GREATEST")}


def session_key(key: tuple[Any, ...]) -> tuple[str, str | None, str | None]:
    """A part's key in ``rollup_sessions`` (skey, visit_day, ident) from its key in Facts: an edge
    session's (source, session id) or a visit's (day, identifier, fallback)."""
    if len(key) == 2:
        return f"e:{key[0]}\n{key[1]}", None, None
    day, ident, fallback = key
    return f"v:{day.isoformat()}\n{ident or ''}\n{fallback}", day.isoformat(), ident


def rollup_rows(hour: int, facts: Facts) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of each upsert that file one hour's facts."""
    rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in UPSERTS["sqlite"]}
    for edge in facts.edge.values():
        for key, part in edge.items():
            _part_rows(rows, hour, key, part)
    for visits in facts.visits.values():
        for visit, part in visits.items():
            _part_rows(rows, hour, visit, part)
    for point, values in facts.dwell.items():
        rows["dwell"] += [(hour, str(point), seconds, n) for seconds, n in sorted(Counter(values).items())]
    for (point, scale), scores in facts.ratings.items():
        rows["rating"] += [(hour, str(point), scale, score, n) for score, n in sorted(Counter(scores).items())]
    for what, found in (("asked", facts.requested), ("done", facts.fulfilled)):
        rows["size"] += [(hour, store, request, what, micros(time)) for (store, request), time in found.items()]
    rows["purchase"] = sorted(
        {(hour, ident, gtin, micros(time)) for ident, time, gtins in facts.purchases for gtin in gtins}
    )
    rows["pos"] = sorted({(hour, store, gtin, micros(t)) for (store, gtin), times in facts.pos.items() for t in times})
    return rows


def _part_rows(rows: dict[str, list[tuple[Any, ...]]], hour: int, key: tuple[Any, ...], part: Part) -> None:
    skey, day, ident = session_key(key)
    point = str(part.touchpoint)
    ended_us, ended_s = (micros(part.ended[0]), part.ended[1]) if part.ended else (None, None)
    rows["session"].append(
        (hour, point, skey, day, ident, part.store, micros(part.start), micros(part.end), ended_us, ended_s)
    )
    rows["seen"] += [(hour, point, skey, gtin) for gtin in sorted(part.seen)]
    rows["ident"] += [(hour, point, skey, i) for i in sorted(part.idents)]


class RollupStore(Storage):
    """``rollup_*``: upkeep at ingest and erasure, the backfill of events stored before them."""

    def _file(self, cur: Cursor, events: Iterable[tuple[dict[str, Any], datetime]]) -> None:
        """File the facts of ``events`` (newly stored ones at ingest: nothing is counted twice),
        each upsert's rows in key order so that concurrent workers lock shared rows in one order."""
        upserts = UPSERTS[self.dialect]
        if self.dialect == "postgres":
            cur.execute(f"SELECT pg_advisory_xact_lock_shared({ROLLUP_LOCK})")
        merged: dict[str, list[tuple[Any, ...]]] = {name: [] for name in upserts}
        for hour, facts in sorted(facts_by_hour(events, POLICY).items()):
            for name, found in rollup_rows(hour, facts).items():
                merged[name] += found
        for name, statement in upserts.items():
            cur.executemany(statement, sorted(merged[name], key=lambda row: tuple(row[: KEY_LENGTH[name]])))

    def _refile_hours(self, cur: Cursor, hours: Iterable[int]) -> None:
        """File these hours again from the events they hold now: after events were deleted, and for
        the backfill. Idempotent; on PostgreSQL it excludes ingest's filing for the transaction."""
        if self.dialect == "postgres":
            cur.execute(f"SELECT pg_advisory_xact_lock({ROLLUP_LOCK})")
        for hour in sorted(set(hours)):
            for table in ROLLUP_TABLES:
                cur.execute(f"DELETE FROM {table} WHERE hour = ?", (hour,))
            self._file(cur, self.events_between(hour_start(hour), hour_start(hour + 1)))

    def pending_rollups(self) -> int:
        """How many hours of stored events ``backfill_rollups`` has yet to file (0: nothing to do)."""
        if not self.fetchall("SELECT name FROM backfills WHERE name = 'rollups' AND done_at IS NULL"):
            return 0
        return int(self.fetchall("SELECT COUNT(DISTINCT hour) FROM event_hours")[0][0])

    def backfill_rollups(self, progress: Callable[[int], None] = lambda done: None) -> bool:
        """File the rollups of events stored before HQ kept them, an hour at a time (``progress`` gets
        the hours done so far); returns whether there was anything to do. Each hour is filed anew from
        its events, so running it twice, at once or after an interruption, files each event once."""
        if not self.fetchall("SELECT name FROM backfills WHERE name = 'rollups' AND done_at IS NULL"):
            return False
        hours = [int(h) for (h,) in self.fetchall("SELECT DISTINCT hour FROM event_hours ORDER BY hour")]
        for done in range(0, len(hours), BACKFILL_HOURS):
            with self.transaction() as cur:
                self._refile_hours(cur, hours[done : done + BACKFILL_HOURS])
            progress(min(done + BACKFILL_HOURS, len(hours)))
        with self.transaction() as cur:
            cur.execute(
                "UPDATE backfills SET done_at = ? WHERE name = 'rollups'",
                (self.time_param(datetime.now(timezone.utc)),),
            )
        return True
