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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hq.analytics.journeys import identity_graph
from hq.core.identity import CONSENT_STATES, LINK_EVENTS, ConsentChange, IdentityGraph, StitchPolicy
from hq.storage import Storage

OVERLAP = timedelta(minutes=2)  # a commit may land this long after its received_at was taken


def set_consent(storage: Storage, customer: str, state: object, now: datetime) -> ConsentChange:
    """Record a consent statement made through the API; raises ValueError for an unknown state."""
    if not isinstance(state, str) or state not in CONSENT_STATES:
        raise ValueError(f"consent: one of {', '.join(sorted(CONSENT_STATES))}")
    change = ConsentChange(now, f"api-{uuid.uuid4()}", f"customer:{customer}", state)
    storage.set_consent(change)
    return change


def full_graph(storage: Storage, policy: StitchPolicy | None = None) -> IdentityGraph:
    """The identity graph from every stored link event and every API consent statement."""
    graph = identity_graph(storage, policy)
    for change in storage.consents():
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
                self._graph.add_events(self.storage.arrived_since(LINK_EVENTS, self._since - OVERLAP))
                for change in self.storage.consents():
                    self._graph.set_consent(change)
            self._since = started
            yield self._graph

    def forget(self) -> None:
        """Rebuild from scratch on next use: erasure removes links, which a graph cannot undo."""
        with self._lock:
            self._graph = None


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
    for event in storage.events_naming([f"customer:{customer}"]):
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
        for e in storage.events_naming(idents)
        if graph.attribute(e) in persons or e["data"].get("customer") == customer
    ]
    found += _handoffs_naming(storage, {i.split(":", 1)[1] for i in idents if i.startswith("handoff:")})
    doomed = list({(e["source"], e["id"]): e for e in found}.values())
    values = sorted({i.split(":", 1)[1] for i in idents})
    events, dead = storage.erase([(e["source"], e["id"]) for e in doomed], values, customer)
    return Erasure(customer, events, dead, len(idents))


def _handoffs_naming(storage: Storage, tokens: set[str]) -> list[dict[str, Any]]:
    """Hand-off events carrying one of these tokens, also those no session or usable anonymous id
    ties to the customer (a redemption on a shared tablet); ``token`` has no column of its own."""
    if not tokens:
        return []
    return [
        e
        for e in storage.read_events(names=("handoff.created", "handoff.redeemed"))
        if e["data"].get("token") in tokens
    ]
