"""Who is who at HQ, read from storage (which keeps identity current as events arrive), consent
statements made through the API, and erasure.

Nothing is kept between calls: each request reads the persons it needs (``person_lookup``,
``customer_lookup``) or, for a report or recompute over everyone, every stitched identifier
(``everyone``), so any number of web processes give the same answers.

Erasure removes a customer, every event attributed to them through stitching (sessions,
anonymous ids, hand-off tokens linked to them, and the sessions they named even when their
consent kept those unstitched), the dead letters that mention any of their identifiers and
their consent statement, in one transaction, and lowers the devices' ``stored`` counters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hq.core.identity import CONSENT_STATES, ConsentChange, PersonLookup, Persons, StitchPolicy, attribution_identifier
from hq.storage import Storage

POLICY = StitchPolicy()


def set_consent(storage: Storage, customer: str, state: object, now: datetime) -> ConsentChange:
    """Record a consent statement made through the API; raises ValueError for an unknown state."""
    if not isinstance(state, str) or state not in CONSENT_STATES:
        raise ValueError(f"consent: one of {', '.join(sorted(CONSENT_STATES))}")
    change = ConsentChange(now, f"api-{uuid.uuid4()}", f"customer:{customer}", state)
    storage.set_consent(change)
    return change


def everyone(storage: Storage) -> Persons:
    """Every stitched identifier's person and every customer's consent: for reports and recompute."""
    return Persons(storage.stitched(), storage.consent_states())


def customer_lookup(storage: Storage, customer: str) -> Persons:
    """The person of a customer token with all of their identifiers (enough to tell which events are
    theirs: an identifier outside it is someone else's)."""
    own = f"customer:{customer}"
    person = storage.persons_of([own]).get(own, own)
    return Persons({ident: person for ident in storage.person_members(person)})


def person_lookup(storage: Storage, identifiers: Iterable[str]) -> Persons:
    """The persons of these identifiers, as storage holds them now."""
    return Persons(storage.persons_of(identifiers))


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed, for the API answer and the audit log (no identifiers in it)."""

    customer: str
    events: int
    dead_letters: int
    identifiers: int


def erasure_identifiers(storage: Storage, graph: PersonLookup, customer: str) -> frozenset[str]:
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


def erase(storage: Storage, customer: str) -> Erasure:
    """Delete the customer and everything attributed to them; see the module docstring."""
    idents = erasure_identifiers(storage, customer_lookup(storage, customer), customer)
    own = f"customer:{customer}"
    named = storage.events_naming(idents)
    graph = person_lookup(storage, {*idents, *filter(None, (attribution_identifier(e, POLICY) for e in named))})
    # Persons that are theirs: their own, and the anonymous persons of ids they named; a session
    # another customer owns (a friend's cabin) stays with that customer.
    persons = {graph.person_of(i) for i in idents}
    persons = {p for p in persons if p == graph.person_of(own) or not p.startswith("customer:")}
    found = [e for e in named if graph.attribute(e) in persons or e["data"].get("customer") == customer]
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
