"""Identity kept in the database: each identifier's person, current as link events are stored.

Mixed into ``SqlStorage``. The transaction that stores events also files their evidence
(``hq.core.identity.evidence``: links and consent statements) in ``identity_links`` and
``identity_consents``. When anything is new, it takes the identity lock (PostgreSQL: an advisory
lock for the rest of the transaction; SQLite's write lock already serialises), merges the raw
components the new links touch (``identity_members``), and replays each such component alone with
the pure core: ``IdentityGraph`` over the component's links and its customers' statements, so the
guards (blocked values, one customer per person, the cap, consent) and the order independence are
the core's, whichever worker stored the batch. Only that component's rows of ``persons`` change:
a late link re-attributes by updating the mapping of the identifiers it joins.

Evidence is filed before the lock is taken and read after it: two workers that link into one
component serialise on the lock, and the second replays with the first's committed links.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from contract.envelope import TYPE_PREFIX, parse_time
from hq.core.identity import (
    CONSENT_STATES,
    LINK_EVENTS,
    ConsentChange,
    Evidence,
    IdentityGraph,
    Link,
    StitchPolicy,
    evidence,
)
from hq.storage.base import Cursor, Storage

LINK_TYPES = frozenset(TYPE_PREFIX + name for name in LINK_EVENTS)
IDENTITY_LOCK = 7461636802  # pg_advisory_xact_lock key; the schema lock is ...801
CHUNK = 400  # identifiers per IN (...) list, under every backend's parameter limit
POLICY = StitchPolicy()
BACKFILL_PAGE = 5000


class IdentityStore(Storage):
    """``identity_*`` and ``persons``: upkeep at ingest, lookups for journeys, reports and erasure."""

    # -- upkeep ---------------------------------------------------------------------------------
    def _file_evidence(self, cur: Cursor, events: Sequence[tuple[dict[str, Any], datetime]]) -> None:
        links: list[tuple[Link, str]] = []
        consents: list[tuple[ConsentChange, str]] = []
        for event, time in events:
            found = evidence(event, POLICY, time=time)
            links += [(link, event["source"]) for link in found.links]
            consents += [(change, event["source"]) for change in found.consents]
        if not links and not consents:
            return
        new_links = cur.executemany(
            "INSERT INTO identity_links (a, b, time, source, event_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(link.a, link.b, self.time_param(link.time), source, link.event_id) for link, source in links],
        )
        new_consents = cur.executemany(
            "INSERT INTO identity_consents (customer, time, source, event_id, state) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [(c.customer, self.time_param(c.time), source, c.event_id, c.state) for c, source in consents],
        )
        if new_links or new_consents:
            idents = {i for link, _ in links for i in (link.a, link.b)} | {c.customer for c, _ in consents}
            self._restitch(cur, idents)

    def _restitch(self, cur: Cursor, idents: Iterable[str]) -> None:
        """Merge the raw components of ``idents`` (and the links between them) into one per connected
        set, then replay each: called under no lock, it takes the identity lock itself."""
        self._lock_identity(cur)
        wanted = sorted(set(idents))
        labels = dict(
            self._chunked(cur, "SELECT identifier, component FROM identity_members WHERE identifier IN", wanted)
        )
        components = sorted(set(labels.values()))
        members = set(wanted) | {
            i for (i,) in self._chunked(cur, "SELECT identifier FROM identity_members WHERE component IN", components)
        }
        self._relabel(cur, members)

    def _relabel(self, cur: Cursor, members: set[str]) -> None:
        """Split ``members`` (whole raw components) into the connected sets of their links, label each
        by its smallest identifier, and replay it."""
        links = self._links_among(cur, members)
        parent = {i: i for i in members}

        def find(i: str) -> str:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for link in links:
            a, b = find(link.a), find(link.b)
            if a != b:
                parent[max(a, b)] = min(a, b)
        groups: dict[str, set[str]] = {}
        for ident in members:
            groups.setdefault(find(ident), set()).add(ident)
        ordered = sorted(members)
        cur.execute("UPDATE counters SET value = value + 1 WHERE name = 'identity'")
        for chunk in (ordered[i : i + CHUNK] for i in range(0, len(ordered), CHUNK)):
            marks = ", ".join("?" * len(chunk))
            cur.execute(f"DELETE FROM identity_members WHERE identifier IN ({marks})", chunk)
            cur.execute(f"DELETE FROM persons WHERE identifier IN ({marks})", chunk)
        linked = {i for link in links for i in (link.a, link.b)}
        cur.executemany(
            "INSERT INTO identity_members (identifier, component) VALUES (?, ?)",
            [(i, min(group)) for group in groups.values() for i in sorted(group) if i in linked],
        )
        consents = self._consents_of(cur, [i for i in ordered if i.startswith("customer:")])
        for group in groups.values():
            graph = IdentityGraph(POLICY)
            graph.add_evidence(
                Evidence(
                    tuple(link for link in links if link.a in group),
                    tuple(c for c in consents if c.customer in group),
                    (),
                )
            )
            cur.executemany(
                "INSERT INTO persons (identifier, person) VALUES (?, ?)",
                [(ident, person) for ident, person in sorted(graph.stitched().items())],
            )

    def _links_among(self, cur: Cursor, members: set[str]) -> list[Link]:
        """Every stored link with an end among ``members`` (a whole component has both ends in it)."""
        ordered = sorted(members)
        found: set[Link] = set()
        for column in ("a", "b"):
            for a, b, time, event_id in self._chunked(
                cur, f"SELECT a, b, time, event_id FROM identity_links WHERE {column} IN", ordered
            ):
                found.add(Link(self.time_value(time) or datetime.min, event_id, a, b))
        return sorted(found)

    def _consents_of(self, cur: Cursor, customers: list[str]) -> list[ConsentChange]:
        """Every statement about these customers: those events carried and the API's."""
        found = [
            ConsentChange(self.time_value(time) or datetime.min, event_id, customer, state)
            for customer, time, event_id, state in self._chunked(
                cur, "SELECT customer, time, event_id, state FROM identity_consents WHERE customer IN", customers
            )
        ]
        plain = [c.split(":", 1)[1] for c in customers]
        found += [
            ConsentChange(self.time_value(time) or datetime.min, event_id, f"customer:{customer}", state)
            for customer, time, event_id, state in self._chunked(
                cur, "SELECT customer, time, id, state FROM consents WHERE customer IN", plain
            )
        ]
        return found

    def _chunked(self, cur: Cursor | None, select: str, values: Sequence[str]) -> list[tuple[Any, ...]]:
        """``select`` (ending in ``IN``) over ``values`` a chunk at a time, in ``cur``'s transaction
        or, without one, as plain reads."""
        run = cur.execute if cur is not None else self.fetchall
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(values), CHUNK):
            chunk = values[i : i + CHUNK]
            rows += run(f"{select} ({', '.join('?' * len(chunk))})", chunk)
        return rows

    def _lock_identity(self, cur: Cursor) -> None:
        if self.dialect == "postgres":
            cur.execute(f"SELECT pg_advisory_xact_lock({IDENTITY_LOCK})")

    def _forget_evidence(self, cur: Cursor, keys: Sequence[tuple[str, str]]) -> None:
        """Remove the evidence of erased events and restitch the components it held together."""
        touched: set[str] = set()
        for source, event_id in keys:
            for a, b in cur.execute(
                "DELETE FROM identity_links WHERE source = ? AND event_id = ? RETURNING a, b", (source, event_id)
            ):
                touched.update((a, b))
            for (customer,) in cur.execute(
                "DELETE FROM identity_consents WHERE source = ? AND event_id = ? RETURNING customer", (source, event_id)
            ):
                touched.add(customer)
        if touched:
            self._restitch(cur, touched)

    def pending_backfill(self) -> int:
        if not self.fetchall("SELECT name FROM backfills WHERE name = 'identity' AND done_at IS NULL"):
            return 0
        types = sorted(LINK_TYPES)
        marks = ", ".join("?" * len(types))
        return int(self.fetchall(f"SELECT COUNT(*) FROM events WHERE type IN ({marks})", types)[0][0])

    def backfill_identity(self, progress: Callable[[int], None] = lambda done: None) -> bool:
        """File the evidence of link events stored before identity was kept in the database, a page at
        a time (``progress`` gets the events done so far); returns whether there was anything to do."""
        if not self.fetchall("SELECT name FROM backfills WHERE name = 'identity' AND done_at IS NULL"):
            return False
        done = 0
        page: list[tuple[dict[str, Any], datetime]] = []
        for event in self.read_events(names=LINK_EVENTS):
            page.append((event, parse_time(event["time"])))
            if len(page) == BACKFILL_PAGE:
                done += self._backfill_page(page)
                progress(done)
                page = []
        done += self._backfill_page(page)
        progress(done)
        with self.transaction() as cur:
            cur.execute(
                "UPDATE backfills SET done_at = ? WHERE name = 'identity'",
                (self.time_param(datetime.now(timezone.utc)),),
            )
        return True

    def _backfill_page(self, page: list[tuple[dict[str, Any], datetime]]) -> int:
        with self.transaction() as cur:
            self._file_evidence(cur, page)
        return len(page)

    # -- reads ----------------------------------------------------------------------------------
    def persons_of(self, identifiers: Iterable[str]) -> dict[str, str]:
        return dict(
            self._chunked(None, "SELECT identifier, person FROM persons WHERE identifier IN", sorted(set(identifiers)))
        )

    def person_members(self, person: str) -> frozenset[str]:
        rows = self.fetchall("SELECT identifier FROM persons WHERE person = ?", (person,))
        return frozenset(i for (i,) in rows) or frozenset({person})

    def identity_version(self) -> int:
        return int(self.fetchall("SELECT value FROM counters WHERE name = 'identity'")[0][0])

    def stitched(self) -> dict[str, str]:
        return dict(self.fetchall("SELECT identifier, person FROM persons"))

    def consent_states(self) -> dict[str, str]:
        statements = [
            ConsentChange(self.time_value(t) or datetime.min, e, c, s)
            for c, t, e, s in self.fetchall("SELECT customer, time, event_id, state FROM identity_consents")
        ]
        statements += self.consents()
        latest: dict[str, ConsentChange] = {}
        for change in statements:
            if change.state in CONSENT_STATES and (change.customer not in latest or change > latest[change.customer]):
                latest[change.customer] = change
        return {customer: change.state for customer, change in latest.items()}
