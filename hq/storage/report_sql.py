"""A touchpoint report as SQL over the hourly rollups (``hq.storage.rollups``) and ``persons``.

Mixed into ``SqlStorage``. Reads only, in one snapshot, and no temporary tables, so a PostgreSQL
hot standby could serve them. The session figures are one statement of common table expressions:

- ``pts``: the window's touchpoints as ``hq.core.rollup_report.arrange`` numbered them;
- ``parts``: the window's session parts, each with its session id: an edge session's key, or a
  digital visit's day and person when its identifier is stitched (a person's visits of one day and
  touchpoint are one session), else the visit's own key;
- ``seen``: the GTINs each session saw;
- ``sessions``: one row per session with its start, end, latest ``session.ended``, owner (its
  customer, else the smallest of its persons), items and whether it converted;

and its result is the union of what is counted from them, each row tagged with what it is.
Dwell times, ratings and size requests are counted from their rollups directly.

The counts per touchpoint, day, store, phase and path are all that leave the database: the cost of
a report follows the sessions of its window, never the history, and a web process keeps nothing.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from hq.core.rollup_report import DAY_US, Median, PointCounts, PointInfo, RollupFigures, RollupQuery, SizeCounts
from hq.storage.base import Cursor, Storage

HOUR_US = 3_600_000_000

SESSIONS = """pts (point, num, rnk, mine, instore) AS (VALUES {points}),
parts AS (
    SELECT s.hour, s.point, s.skey,
           CASE WHEN p.person IS NOT NULL THEN 'p:' || s.visit_day || ':' || p.person ELSE s.skey END AS sid,
           s.store, s.start_us, s.end_us, s.ended_us, s.ended_s
    FROM rollup_sessions s LEFT JOIN persons p ON s.visit_day IS NOT NULL AND p.identifier = s.ident
    WHERE s.hour >= ? AND s.hour < ?),
seen AS (
    SELECT DISTINCT pa.point, pa.sid, g.gtin
    FROM parts pa JOIN rollup_seen g ON g.hour = pa.hour AND g.point = pa.point AND g.skey = pa.skey),
base AS (
    SELECT point, sid, MIN(store) AS store, MIN(start_us) AS start_us, MAX(end_us) AS end_us
    FROM parts GROUP BY point, sid),
whose AS (
    SELECT pa.point, pa.sid, COALESCE(pp.person, i.ident) AS who
    FROM parts pa JOIN rollup_idents i ON i.hour = pa.hour AND i.point = pa.point AND i.skey = pa.skey
    LEFT JOIN persons pp ON pp.identifier = i.ident),
owners AS (
    SELECT point, sid, COALESCE(MIN(CASE WHEN who LIKE 'customer:%' THEN who END), MIN(who)) AS owner
    FROM whose GROUP BY point, sid),
items AS (SELECT point, sid, COUNT(*) AS n FROM seen GROUP BY point, sid),
latest AS (
    SELECT point, sid, ended_s,
           ROW_NUMBER() OVER (PARTITION BY point, sid ORDER BY ended_us DESC, ended_s DESC) AS rn
    FROM parts WHERE ended_us IS NOT NULL),
whole AS (
    SELECT b.point, b.sid, b.store, b.start_us, b.end_us, o.owner, COALESCE(it.n, 0) AS items, l.ended_s
    FROM base b
    LEFT JOIN owners o ON o.point = b.point AND o.sid = b.sid
    LEFT JOIN items it ON it.point = b.point AND it.sid = b.sid
    LEFT JOIN latest l ON l.point = b.point AND l.sid = b.sid AND l.rn = 1),
bought AS (
    SELECT COALESCE(pp.person, pu.ident) AS person, pu.gtin, pu.at_us
    FROM rollup_purchases pu LEFT JOIN persons pp ON pp.identifier = pu.ident
    WHERE pu.at_us >= ? AND pu.at_us < ?),
converted AS (
    SELECT f.point, f.sid
    FROM bought b
    JOIN whole f ON f.owner = b.person AND b.at_us >= f.start_us AND b.at_us <= f.end_us + ?
    JOIN seen g ON g.point = f.point AND g.sid = f.sid AND g.gtin = b.gtin
    UNION
    SELECT f.point, f.sid
    FROM whole f
    JOIN pts t ON t.point = f.point AND t.instore = 1
    JOIN seen g ON g.point = f.point AND g.sid = f.sid
    WHERE f.store IS NOT NULL AND (f.owner IS NULL OR f.owner NOT LIKE 'customer:%')
      AND EXISTS (SELECT 1 FROM rollup_pos po
                  WHERE po.store = f.store AND po.gtin = g.gtin
                    AND po.at_us >= f.start_us AND po.at_us <= f.end_us + ?)),
sessions AS (
    SELECT f.*, CASE WHEN c.sid IS NULL THEN 0 ELSE 1 END AS converted
    FROM whole f LEFT JOIN converted c ON c.point = f.point AND c.sid = f.sid),
per AS (
    SELECT f.owner, MAX(t.rnk) AS deepest, MAX(t.mine) AS mine
    FROM sessions f JOIN pts t ON t.point = f.point WHERE f.owner IS NOT NULL GROUP BY f.owner),
ordered AS (
    SELECT f.owner, t.num, f.start_us, LAG(t.num) OVER (PARTITION BY f.owner ORDER BY f.start_us, t.num) AS prev
    FROM sessions f JOIN pts t ON t.point = f.point
    WHERE f.owner IN (SELECT owner FROM per WHERE mine = 1)),
kept AS (
    SELECT owner, num, ROW_NUMBER() OVER (PARTITION BY owner ORDER BY start_us, num) AS step
    FROM ordered WHERE prev IS NULL OR prev <> num),
paths AS (SELECT owner, {steps} FROM kept GROUP BY owner),
counted AS (SELECT {columns}, COUNT(*) AS n FROM paths GROUP BY {columns}),
seconds AS ({seconds})"""

# The mean and the two middle values of weighted values per key (n copies of v; the median is their
# mean) and the value at nearest rank 90 % (ceil(0.9 n) = (9 n + 9) / 10 in whole numbers).
MEDIANS = """SELECT k, MAX(total) AS total, MAX(weight) / MAX(total) AS mean,
       MIN(CASE WHEN upto >= (total + 1) / 2 THEN v END) AS low,
       MIN(CASE WHEN upto >= (total + 2) / 2 THEN v END) AS high,
       MIN(CASE WHEN upto >= (9 * total + 9) / 10 THEN v END) AS p90
FROM (SELECT k, v,
             CAST(SUM(n) OVER (PARTITION BY k ORDER BY v ROWS UNBOUNDED PRECEDING) AS {big}) AS upto,
             CAST(SUM(n) OVER (PARTITION BY k) AS {big}) AS total,
             SUM(v * n) OVER (PARTITION BY k) AS weight
      FROM ({values}) v) r
GROUP BY k"""

SIZE_WAITS = """SELECT a.store AS k,
       CASE WHEN d.at_us IS NULL OR d.at_us < a.at_us THEN NULL
            ELSE CAST(d.at_us - a.at_us AS DOUBLE PRECISION) / 1000000 END AS v
FROM (SELECT store, request_id, MIN(first_us) AS at_us FROM rollup_sizes
      WHERE what = 'asked' AND hour >= ? AND hour < ? {store} GROUP BY store, request_id) a
LEFT JOIN (SELECT store, request_id, MIN(first_us) AS at_us FROM rollup_sizes
           WHERE what = 'done' AND hour >= ? AND hour < ? GROUP BY store, request_id) d
       ON d.store = a.store AND d.request_id = a.request_id"""


class RollupReads(Storage):
    """The report's SQL; the SQL backend supplies the read snapshot (``snapshot``) and the dialect."""

    @abc.abstractmethod
    def snapshot(self) -> AbstractContextManager[Cursor]:
        """A read transaction on this thread's connection that sees one state of the database."""

    def rollup_report(self, q: RollupQuery, arrange: Callable[[list[str]], list[PointInfo]]) -> RollupFigures:
        window = (q.first_hour, q.end_hour)
        with self.snapshot() as cur:
            found = cur.execute(
                "SELECT DISTINCT point FROM rollup_sessions WHERE hour >= ? AND hour < ?"
                " UNION SELECT DISTINCT point FROM rollup_ratings WHERE hour >= ? AND hour < ?",
                (*window, *window),
            )
            points = arrange([p for (p,) in found])
            figures = self._session_figures(cur, q, points) if points else ([], [], [], [], [])
            dwell = self._medians(
                cur,
                "SELECT point AS k, seconds AS v, SUM(n) AS n FROM rollup_dwell WHERE hour >= ? AND hour < ?"
                " GROUP BY point, seconds",
                window,
            )
            ratings = [
                (point, scale, int(score), int(n))
                for point, scale, score, n in cur.execute(
                    "SELECT point, scale, score, SUM(n) FROM rollup_ratings WHERE hour >= ? AND hour < ?"
                    " GROUP BY point, scale, score",
                    window,
                )
            ]
            sizes = self._sizes(cur, q)
        counts, daily, seconds, deepest, paths = figures
        return RollupFigures(points, counts, daily, seconds, dwell, ratings, sizes, deepest, paths)

    def _session_figures(self, cur: Cursor, q: RollupQuery, points: Sequence[PointInfo]) -> tuple[list[Any], ...]:
        """Counts per touchpoint, sessions per day, session seconds, deepest phases and top paths:
        one statement, so the sessions are resolved once."""
        big, least = ("BIGINT", "LEAST") if self.dialect == "postgres" else ("INTEGER", "MIN")
        width = max(7, q.path_length + 1)
        steps = ", ".join(f"MAX(CASE WHEN step = {i} THEN num END) AS s{i}" for i in range(1, q.path_length + 1))
        columns = ", ".join(f"s{i}" for i in range(1, q.path_length + 1))
        seconds = MEDIANS.format(
            big=big, values="SELECT point AS k, ended_s AS v, 1 AS n FROM sessions WHERE ended_s IS NOT NULL"
        )

        def tagged(kind: str, key: str, *values: str) -> str:
            cells = [f"CAST({v} AS DOUBLE PRECISION)" for v in values]
            cells += ["CAST(NULL AS DOUBLE PRECISION)"] * (width - len(values))
            return f"SELECT '{kind}' AS kind, {key} AS k, {', '.join(cells)}"

        day = f"{least}({q.days - 1}, (start_us - {int(q.start_us)}) / {DAY_US})"
        outputs = [
            tagged(
                "count",
                "point",
                "COUNT(*)",
                "COUNT(DISTINCT owner)",
                "COUNT(DISTINCT CASE WHEN owner LIKE 'customer:%' THEN owner END)",
                "SUM(items)",
                "SUM(CASE WHEN items > 0 THEN 1 ELSE 0 END)",
                "SUM(converted)",
            )
            + " FROM sessions GROUP BY point",
            tagged("day", "point", day, "COUNT(*)") + f" FROM sessions GROUP BY point, {day}",
            tagged("seconds", "k", "total", "mean", "low", "high") + " FROM seconds",
            tagged("deepest", "NULL", "deepest", "COUNT(*)") + " FROM per WHERE mine = 1 GROUP BY deepest",
            tagged("path", "NULL", "n", *columns.split(", "))
            + " FROM counted WHERE n >= COALESCE((SELECT n FROM counted ORDER BY n DESC LIMIT 1 OFFSET ?), 0)",
        ]
        sql = (
            "WITH "
            + SESSIONS.format(
                points=", ".join(["(?, ?, ?, ?, ?)"] * len(points)), steps=steps, columns=columns, seconds=seconds
            )
            + "\n"
            + "\nUNION ALL ".join(outputs)
        )
        after_us = q.start_us + (q.after_hour - q.first_hour) * HOUR_US
        params = [
            *(value for point in points for value in (point[0], point[1], point[2], int(point[3]), int(point[4]))),
            q.first_hour,
            q.end_hour,
            q.start_us,
            after_us,
            q.conversion_us,
            q.conversion_us,
            q.top_paths - 1,
        ]
        counts, daily, medians, deepest, paths = [], [], [], [], []
        for kind, key, *x in cur.execute(sql, params):
            if kind == "count":
                counts.append(PointCounts(key, *(int(v or 0) for v in x[:6])))
            elif kind == "day":
                daily.append((key, int(x[0]), int(x[1])))
            elif kind == "seconds":
                medians.append(Median((key, int(x[0]), x[1], x[2], x[3])))
            elif kind == "deepest":
                deepest.append((int(x[0]), int(x[1])))
            else:
                paths.append((tuple(int(n) for n in x[1 : q.path_length + 1] if n is not None), int(x[0])))
        return counts, daily, medians, deepest, paths

    def _medians(self, cur: Cursor, values: str, params: Sequence[Any]) -> list[Median]:
        big = "BIGINT" if self.dialect == "postgres" else "INTEGER"
        rows = cur.execute(MEDIANS.format(values=values, big=big), params)
        return [Median((k, int(n), mean, low, high)) for k, n, mean, low, high, _ in rows]

    def _sizes(self, cur: Cursor, q: RollupQuery) -> list[SizeCounts]:
        """Per store: requests with no answer, and the waits of the answered ones."""
        mine = [q.store] if q.store is not None else []
        params = [q.first_hour, q.end_hour, *mine, q.first_hour, q.after_hour]
        waits = SIZE_WAITS.format(store="AND store = ?" if mine else "")
        unanswered = cur.execute(
            f"SELECT k, SUM(CASE WHEN v IS NULL THEN 1 ELSE 0 END) FROM ({waits}) w GROUP BY k", params
        )
        big = "BIGINT" if self.dialect == "postgres" else "INTEGER"
        answered = {
            k: (Median((k, int(n), mean, low, high)), p90)
            for k, n, mean, low, high, p90 in cur.execute(
                MEDIANS.format(big=big, values=f"SELECT k, v, 1 AS n FROM ({waits}) w WHERE v IS NOT NULL"), params
            )
        }
        found = []
        for store, missing in sorted(unanswered):
            median, p90 = answered.get(store, (Median((store, 0, None, None, None)), None))
            found.append(SizeCounts(store, int(missing), median, p90))
        return found
