"""Who is who at HQ: the identity graph kept current, consent statements, and erasure.

The analytics core (``hq.identity``) stitches; this module feeds it from storage. A
:class:`GraphCache` builds the graph once from every link event plus the API's consent
statements, then on each use reads only the link events that arrived since (an index on
``(type, received_at)`` keeps that cheap at a million events). Re-reading an overlap is
harmless, since the graph ignores links and statements it already holds.

Erasure removes a customer, every event attributed to them through stitching (sessions,
anonymous ids, hand-off tokens linked to them, and the sessions they named even when their
consent kept those unstitched), the dead letters that mention any of their identifiers and
their consent statement, in one transaction, and lowers the devices' ``stored`` counters.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contract.envelope import TYPE_PREFIX
from hq.analytics.journeys import events_naming, identity_graph, read_events
from hq.core.identity import CONSENT_STATES, LINK_EVENTS, ConsentChange, IdentityGraph, StitchPolicy
from hq.storage import Storage
from hq.storage.sql import EVENT_FIELDS, event_from_row

OVERLAP = timedelta(minutes=2)  # a commit may land this long after its received_at was taken


def set_consent(storage: Storage, customer: str, state: str, now: datetime) -> ConsentChange:
    """Record a consent statement made through the API; raises ValueError for an unknown state."""
    if state not in CONSENT_STATES:
        raise ValueError(f"consent: one of {', '.join(sorted(CONSENT_STATES))}")
    change = ConsentChange(now, f"api-{uuid.uuid4()}", f"customer:{customer}", state)
    with storage.transaction() as cur:
        cur.execute("DELETE FROM consents WHERE customer = ?", (customer,))
        cur.execute(
            "INSERT INTO consents (customer, state, time, id) VALUES (?, ?, ?, ?)",
            (customer, state, storage.time_param(now), change.event_id),
        )
    return change


def consent_changes(storage: Storage) -> list[ConsentChange]:
    """Every statement made through the API (one per customer, the latest)."""
    rows = storage.fetchall("SELECT customer, state, time, id FROM consents")
    return [ConsentChange(storage.time_value(t) or datetime.min, i, f"customer:{c}", s) for c, s, t, i in rows]


def full_graph(storage: Storage, policy: StitchPolicy | None = None) -> IdentityGraph:
    """The identity graph from every stored link event and every API consent statement."""
    graph = identity_graph(storage, policy)
    for change in consent_changes(storage):
        graph.set_consent(change)
    return graph


class GraphCache:
    """One identity graph per web process, caught up on each use; ``use()`` holds its lock."""

    def __init__(self, storage: Storage, clock: Callable[[], datetime], policy: StitchPolicy | None = None) -> None:
        self.storage = storage
        self.clock = clock
        self.policy = policy
        self._lock = threading.Lock()
        self._graph: IdentityGraph | None = None
        self._since: datetime | None = None

    @contextmanager
    def use(self) -> Iterator[IdentityGraph]:
        """The current graph, not changed by others while the block runs."""
        with self._lock:
            started = self.clock()
            if self._graph is None or self._since is None:
                self._graph = full_graph(self.storage, self.policy)
            else:
                self._graph.add_events(self._arrived_since(self._since - OVERLAP))
                for change in consent_changes(self.storage):
                    self._graph.set_consent(change)
            self._since = started
            yield self._graph

    def forget(self) -> None:
        """Rebuild from scratch on next use: erasure removes links, which a graph cannot undo."""
        with self._lock:
            self._graph = None

    def _arrived_since(self, moment: datetime) -> Iterator[dict[str, Any]]:
        types = [TYPE_PREFIX + name for name in LINK_EVENTS]
        rows = self.storage.fetchall(
            f"SELECT {EVENT_FIELDS} FROM events WHERE type IN ({', '.join('?' * len(types))}) AND received_at >= ?",
            [*types, self.storage.time_param(moment)],
        )
        return (event_from_row(self.storage, row) for row in rows)


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed, for the API answer and the audit log (no identifiers in it)."""

    customer: str
    events: int
    dead_letters: int
    identifiers: int


def erasure_identifiers(storage: Storage, graph: IdentityGraph, customer: str) -> frozenset[str]:
    """The customer's stitched identifiers plus every session and anonymous id their own events
    name (which consent may have kept unstitched); never another customer's."""
    person = graph.person_of(f"customer:{customer}")
    found = set(graph.members(person)) | {f"customer:{customer}"}
    for event in events_naming(storage, [f"customer:{customer}"]):
        data = event["data"]
        for kind, field in (("session", "session_id"), ("anon", "anonymous_id")):
            value = data.get(field)
            if isinstance(value, str) and value.strip().lower() not in graph.policy.blocked:
                found.add(f"{kind}:{value}")
    return frozenset(found)


def erase(storage: Storage, graph: IdentityGraph, customer: str) -> Erasure:
    """Delete the customer and everything attributed to them; see the module docstring."""
    idents = erasure_identifiers(storage, graph, customer)
    own = f"customer:{customer}"
    # Persons that are theirs: their own, and the anonymous persons of ids they named; a session
    # another customer owns (a friend's cabin) stays with that customer.
    persons = {graph.person_of(i) for i in idents}
    persons = {p for p in persons if p == graph.person_of(own) or not p.startswith("customer:")}
    found = [
        e
        for e in events_naming(storage, idents)
        if graph.attribute(e) in persons or e["data"].get("customer") == customer
    ]
    found += _handoffs_naming(storage, {i.split(":", 1)[1] for i in idents if i.startswith("handoff:")})
    doomed = list({(e["source"], e["id"]): e for e in found}.values())
    per_device = Counter(e["source"] for e in doomed if "seq" in e)
    values = sorted({i.split(":", 1)[1] for i in idents})
    with storage.transaction() as cur:
        storage.delete_events(cur, [(e["source"], e["id"]) for e in doomed])
        for source, count in per_device.items():
            _, _, store, _, device = source.split("/")
            cur.execute("UPDATE devices SET stored = stored - ? WHERE store = ? AND device = ?", (count, store, device))
        dead = 0
        for value in values:
            dead += len(cur.execute(_dead_letter_delete(storage.dialect), (value.encode(), value, value)))
        cur.execute("DELETE FROM consents WHERE customer = ?", (customer,))
    return Erasure(customer, len(doomed), dead, len(idents))


def _handoffs_naming(storage: Storage, tokens: set[str]) -> list[dict[str, Any]]:
    """Hand-off events carrying one of these tokens, also those no session or usable anonymous id
    ties to the customer (a redemption on a shared tablet); ``token`` has no column of its own."""
    if not tokens:
        return []
    return [
        e
        for e in read_events(storage, names=("handoff.created", "handoff.redeemed"))
        if e["data"].get("token") in tokens
    ]


def _dead_letter_delete(dialect: str) -> str:
    """Dead letters whose payload, source or event id contains a value (bytes, text, text)."""
    if dialect == "postgres":
        contains = "position(? in raw) > 0 OR position(? in COALESCE(source, '')) > 0"
    else:
        contains = "instr(raw, ?) > 0 OR instr(COALESCE(source, ''), ?) > 0"
    return f"DELETE FROM dead_letters WHERE {contains} OR COALESCE(event_id, '') = ? RETURNING n"


def stores(storage: Storage) -> list[str]:
    """Every store HQ knows of: from its devices and from the events that name one."""
    rows = storage.fetchall("SELECT store FROM devices UNION SELECT DISTINCT store FROM events WHERE store IS NOT NULL")
    return sorted({r[0] for r in rows if r[0]})
