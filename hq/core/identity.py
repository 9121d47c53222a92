"""Identity stitching: which identifiers belong to one person, so that a journey crosses channels.

Identifiers are typed strings: ``session:<id>`` (an in-store session), ``anon:<id>`` (a web or app
anonymous id), ``customer:<token>`` (a pseudonymous loyalty token) and ``handoff:<token>`` (a QR
hand-off). Links come from ``customer.identified`` (session-customer), ``handoff.created``
(session-handoff), ``handoff.redeemed`` (handoff-anon, and anon-customer when logged in) and
``customer.logged_in`` (anon-customer).

A person is a connected component of accepted links; its canonical id is its customer identifier
if it has one, else its smallest identifier. Guards keep false merges out:

- blocked values (empty, ``0``, ``null``, ``none``, ``anonymous``, ``undefined``, and the policy's
  extras) and device ids are never identifiers: the link is dropped as a ``blocked`` conflict;
- two different customers are never merged (``session-customer`` when a session that already
  belongs to one customer is identified as another, ``customers`` otherwise);
- a person holds at most ``max_identifiers``; a link beyond that is a ``cap`` conflict;
- consent is ``data.consent`` (``granted``, ``denied``, ``revoked``) on any of those four link
  events, usually ``customer.identified``; a customer with no statement is ``unknown``;
- a customer whose latest consent is ``denied`` or ``revoked`` is never linked to anything, so
  their own token's events stay theirs but no anonymous session is stitched to them; the
  sessions and ids they named stay anonymous persons, still counted as theirs by the guards (a
  second customer cannot take them). Consent is the latest statement by event time and applies
  to past links too: revoking un-stitches.

Order independence: the links of one raw component (everything any link, accepted or not, ever
connected) are applied in ``(time, event_id, a, b)`` order, so in a conflict the earliest link
wins, whatever order the links arrived in. "Earliest" trusts the devices' clocks: a skewed
clock can make the wrong one of two conflicting links win, but every HQ process picks the same.
A link that arrives late for its raw component replays that component alone (once per batch
with ``add_events``); ``add_link``/``add_events`` return the identifiers whose person changed, so
storage re-attributes only their events. A hub (one card scanned in thousands of sessions) makes
a large raw component, and each late batch touching it replays all of it: see bench/RESULTS.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from contract.envelope import EDGE_SOURCE, event_name, parse_time

BLOCKED_VALUES = frozenset({"", "0", "null", "none", "anonymous", "undefined"})
IDENTIFIER_KINDS = ("session", "anon", "customer", "handoff")
CONSENT_STATES = frozenset({"granted", "denied", "revoked"})
WITHHELD = frozenset({"denied", "revoked"})
MAX_VALUE_LENGTH = 200


@dataclass(frozen=True)
class StitchPolicy:
    """What may never link and how large a person may grow."""

    blocked: frozenset[str] = BLOCKED_VALUES
    device_ids: frozenset[str] = frozenset()
    max_identifiers: int = 50

    def with_blocked(self, *values: str) -> StitchPolicy:
        """The default blocked values plus site-specific ones (compared case-insensitively)."""
        extra = frozenset(v.strip().lower() for v in values)
        return StitchPolicy(self.blocked | extra, self.device_ids, self.max_identifiers)


@dataclass(frozen=True, order=True)
class Link:
    """Evidence that two identifiers are one person; ordered by time, then event id."""

    time: datetime
    event_id: str
    a: str
    b: str

    @classmethod
    def between(cls, x: str, y: str, time: datetime, event_id: str) -> Link:
        """A link with its ends in canonical (sorted) order, so duplicates compare equal."""
        a, b = sorted((x, y))
        return cls(time, event_id, a, b)


@dataclass(frozen=True, order=True)
class Conflict:
    """A link that was not merged, and why; storage reports these to staff."""

    kind: str  # blocked | session-customer | customers | cap | consent
    identifiers: tuple[str, ...]
    event_id: str
    reason: str


@dataclass(frozen=True, order=True)
class ConsentChange:
    """A customer's consent statement; the latest by (time, event_id) is in force."""

    time: datetime
    event_id: str
    customer: str  # a customer identifier, "customer:<token>"
    state: str


@dataclass(frozen=True)
class Evidence:
    """What one event says about identity."""

    links: tuple[Link, ...]
    consents: tuple[ConsentChange, ...]
    rejected: tuple[Conflict, ...]


@dataclass(frozen=True)
class AttributedEvent:
    """An event with the canonical id of the person it belongs to (None: nobody knowable)."""

    person: str | None
    event: Mapping[str, Any]


def device_of(event: Mapping[str, Any]) -> str | None:
    """The device id in an edge event's source, else None."""
    match = EDGE_SOURCE.fullmatch(str(event.get("source", "")))
    return match["device"] if match else None


def identifier(kind: str, value: Any, policy: StitchPolicy, device: str | None = None) -> str | None:
    """``kind:value``, or None when the value is blocked, a device id, or not a usable string."""
    if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
        return None
    folded = value.strip().lower()
    if folded in policy.blocked or value in policy.device_ids or value == device:
        return None
    return f"{kind}:{value}"


def attribution_identifier(event: Mapping[str, Any], policy: StitchPolicy) -> str | None:
    """The identifier an event is attributed through: its customer's, else its session's, else its
    anonymous id's. It does not depend on the graph, so analytics can keep it and resolve the
    person later, when late links may have changed it."""
    data = event.get("data") or {}
    device = device_of(event)
    for kind, field in (("customer", "customer"), ("session", "session_id"), ("anon", "anonymous_id")):
        ident = identifier(kind, data.get(field), policy, device)
        if ident is not None:
            return ident
    return None


# event name -> (kind, data field) pairs, each consecutive pair of which is linked.
_LINK_FIELDS: dict[str, tuple[tuple[tuple[str, str], tuple[str, str]], ...]] = {
    "customer.identified": ((("session", "session_id"), ("customer", "customer")),),
    "handoff.created": ((("session", "session_id"), ("handoff", "token")),),
    "handoff.redeemed": (
        (("handoff", "token"), ("anon", "anonymous_id")),
        (("anon", "anonymous_id"), ("customer", "customer")),
    ),
    "customer.logged_in": ((("anon", "anonymous_id"), ("customer", "customer")),),
}
LINK_EVENTS = tuple(_LINK_FIELDS)  # the only event names a graph needs to read
NO_EVIDENCE = Evidence((), (), ())


def evidence(event: Mapping[str, Any], policy: StitchPolicy, time: datetime | None = None) -> Evidence:
    """The links and consent statements one (validated) event carries, and what was refused;
    ``time`` is the event's parsed ``time`` when the caller has it (storage does)."""
    name = event_name(event)
    if name not in _LINK_FIELDS:
        return NO_EVIDENCE
    data = event.get("data") or {}
    event_id = str(event["id"])
    time = time or parse_time(event["time"])
    device = device_of(event)
    links: list[Link] = []
    rejected: list[Conflict] = []
    for (kind_a, field_a), (kind_b, field_b) in _LINK_FIELDS[name]:
        if data.get(field_a) is None or data.get(field_b) is None:
            continue  # absent or JSON null: nothing claimed, nothing to refuse
        x = identifier(kind_a, data[field_a], policy, device)
        y = identifier(kind_b, data[field_b], policy, device)
        if x is None or y is None:
            raw = (f"{kind_a}:{data[field_a]!s:.80}", f"{kind_b}:{data[field_b]!s:.80}")
            rejected.append(Conflict("blocked", raw, event_id, "a blocked value or device id never links"))
        elif x != y:
            links.append(Link.between(x, y, time, event_id))
    consents: list[ConsentChange] = []
    if "consent" in data and "customer" in data:
        customer = identifier("customer", data["customer"], policy, device)
        if customer is not None and data["consent"] in CONSENT_STATES:
            consents.append(ConsentChange(time, event_id, customer, data["consent"]))
        elif customer is not None:
            reason = f"consent {data['consent']!r:.40} is not one of {sorted(CONSENT_STATES)}"
            rejected.append(Conflict("consent", (customer,), event_id, reason))
    return Evidence(tuple(links), tuple(consents), tuple(rejected))


class PersonLookup(Protocol):
    """Who is who, for the code that attributes events: an ``IdentityGraph`` (built in memory) or
    :class:`Persons` (a lookup read from storage, where HQ keeps identity)."""

    policy: StitchPolicy

    def person_of(self, ident: str) -> str: ...

    def members(self, person: str) -> frozenset[str]: ...

    def consent_of(self, customer: str) -> str: ...

    def attribute(self, event: Mapping[str, Any]) -> str | None: ...


class Persons:
    """Identity as a lookup: the person of every stitched identifier (any other is its own person)
    and each customer's consent; as much of it as a caller read from storage."""

    def __init__(
        self, stitched: Mapping[str, str], consents: Mapping[str, str] | None = None, policy: StitchPolicy | None = None
    ) -> None:
        self.stitched = stitched
        self.consents = consents or {}
        self.policy = policy or StitchPolicy()

    def person_of(self, ident: str) -> str:
        return self.stitched.get(ident, ident)

    def members(self, person: str) -> frozenset[str]:
        """Among the identifiers this lookup holds (a scan: for the few of one person)."""
        return frozenset(i for i, p in self.stitched.items() if p == person) or frozenset({person})

    def consent_of(self, customer: str) -> str:
        return self.consents.get(customer, "unknown")

    def attribute(self, event: Mapping[str, Any]) -> str | None:
        ident = attribution_identifier(event, self.policy)
        return None if ident is None else self.person_of(ident)


class IdentityGraph:
    """Persons built from links, guarded against false merges, independent of arrival order."""

    def __init__(self, policy: StitchPolicy | None = None) -> None:
        self.policy = policy or StitchPolicy()
        # Raw components: union-find over every link ever seen, accepted or not.
        self._raw_parent: dict[str, str] = {}
        self._raw_links: dict[str, set[Link]] = {}
        self._raw_members: dict[str, set[str]] = {}
        self._raw_last: dict[str, Link] = {}
        self._raw_conflicts: dict[str, list[Conflict]] = {}
        # Persons: identifier -> canonical id, canonical id -> members.
        self._person: dict[str, str] = {}
        self._members: dict[str, frozenset[str]] = {}
        self._consent: dict[str, ConsentChange] = {}
        self._claims: dict[str, str] = {}  # person -> the withheld customer it belongs to
        self._rejected: set[Conflict] = set()

    # -- queries -------------------------------------------------------------------------------

    def person_of(self, ident: str) -> str:
        """The canonical id of the person ``ident`` belongs to (itself when never linked)."""
        return self._person.get(ident, ident)

    def stitched(self) -> Mapping[str, str]:
        """Identifier -> canonical id, for every identifier of a person with more than one: what
        ``person_of`` looks up, for callers that look up hundreds of thousands (read only, live)."""
        return self._person

    def members(self, person: str) -> frozenset[str]:
        """Every identifier of a person, given its canonical id."""
        return self._members.get(person, frozenset({person}))

    def persons(self) -> dict[str, frozenset[str]]:
        """Canonical id -> identifiers, for every person with more than one identifier."""
        return dict(self._members)

    def consent_of(self, customer: str) -> str:
        """``granted``, ``denied``, ``revoked`` or ``unknown`` for a customer identifier."""
        change = self._consent.get(customer)
        return change.state if change else "unknown"

    def conflicts(self) -> tuple[Conflict, ...]:
        """Every refused link, sorted; the same set whatever order links arrived in."""
        found = set(self._rejected)
        for conflicts in self._raw_conflicts.values():
            found.update(conflicts)
        return tuple(sorted(found))

    def attribute(self, event: Mapping[str, Any]) -> str | None:
        """The person an event belongs to: the person of its attribution identifier."""
        ident = attribution_identifier(event, self.policy)
        return None if ident is None else self.person_of(ident)

    # -- updates -------------------------------------------------------------------------------

    def add_event(self, event: Mapping[str, Any]) -> frozenset[str]:
        """Apply one event's evidence; returns the identifiers whose person changed."""
        return self.add_evidence(evidence(event, self.policy))

    def add_events(self, events: Iterable[Mapping[str, Any]]) -> frozenset[str]:
        """Apply a batch (an uplink message); each component replays at most once for it."""
        found = [evidence(event, self.policy) for event in events]
        return self.add_evidence(
            Evidence(
                tuple(link for f in found for link in f.links),
                tuple(consent for f in found for consent in f.consents),
                tuple(conflict for f in found for conflict in f.rejected),
            )
        )

    def set_consent(self, change: ConsentChange) -> frozenset[str]:
        """Record a consent statement; re-stitches the customer's component if stitching flips."""
        return self.add_evidence(Evidence((), (change,), ()))

    def add_link(self, link: Link) -> frozenset[str]:
        """Apply one link; returns the identifiers whose person changed (to re-attribute)."""
        return self.add_evidence(Evidence((link,), (), ()))

    def add_evidence(self, found: Evidence) -> frozenset[str]:
        """Apply consents, then links in time order: a link later than everything its components
        hold merges at once, an earlier one marks them for one replay at the end of the batch.
        Returns the identifiers whose person changed."""
        self._rejected.update(found.rejected)
        before: dict[str, str] = {}
        replay: list[str] = []
        for change in found.consents:
            if self._record_consent(change) and change.customer in self._raw_parent:
                replay.append(change.customer)
        for link in sorted(set(found.links)):
            root_a, root_b = self._raw_find(link.a), self._raw_find(link.b)
            if link in self._raw_links[root_a]:
                continue
            late = any(r in self._raw_last and link < self._raw_last[r] for r in (root_a, root_b))
            root = self._raw_union(root_a, root_b)
            self._raw_links[root].add(link)
            self._raw_last[root] = max(self._raw_last.get(root, link), link)
            if late:
                replay.append(link.a)
            else:
                self._apply(link, self._raw_conflicts[root], before)
        for root in {self._raw_find(ident) for ident in replay}:
            self._replay(root, before)
        return frozenset(ident for ident, person in before.items() if self.person_of(ident) != person)

    def _record_consent(self, change: ConsentChange) -> bool:
        """Keep the latest statement; True when it flips whether the customer may be stitched."""
        current = self._consent.get(change.customer)
        if current is not None and current >= change:
            return False
        self._consent[change.customer] = change
        was_withheld = current is not None and current.state in WITHHELD
        return was_withheld != (change.state in WITHHELD)

    # -- internals -----------------------------------------------------------------------------

    def _raw_find(self, ident: str) -> str:
        parent = self._raw_parent
        if ident not in parent:
            parent[ident] = ident
            self._raw_links[ident] = set()
            self._raw_members[ident] = {ident}
            self._raw_conflicts[ident] = []
            return ident
        root = ident
        while parent[root] != root:
            root = parent[root]
        while parent[ident] != root:
            parent[ident], ident = root, parent[ident]
        return root

    def _raw_union(self, a: str, b: str) -> str:
        if a == b:
            return a
        if len(self._raw_members[a]) < len(self._raw_members[b]):
            a, b = b, a
        self._raw_parent[b] = a
        self._raw_links[a] |= self._raw_links.pop(b)
        self._raw_members[a] |= self._raw_members.pop(b)
        self._raw_conflicts[a].extend(self._raw_conflicts.pop(b))
        if b in self._raw_last:
            last_b = self._raw_last.pop(b)
            self._raw_last[a] = max(self._raw_last.get(a, last_b), last_b)
        return a

    def _replay(self, root: str, before: dict[str, str]) -> None:
        """Rebuild one raw component's persons from its links in time order."""
        idents = self._raw_members[root]
        for ident in idents:
            before.setdefault(ident, self.person_of(ident))
        for person in {self.person_of(ident) for ident in idents}:
            self._members.pop(person, None)
        for ident in idents:
            self._person.pop(ident, None)
            self._claims.pop(ident, None)
        conflicts: list[Conflict] = []
        for link in sorted(self._raw_links[root]):
            self._apply(link, conflicts, before)
        self._raw_conflicts[root] = conflicts

    def _owners(self, person: str, members: frozenset[str]) -> set[str]:
        """The customers a person belongs to: its customer member, or one who withheld consent."""
        owners = {m for m in members if m.startswith("customer:")}
        if person in self._claims:
            owners.add(self._claims[person])
        return owners

    def _apply(self, link: Link, conflicts: list[Conflict], before: dict[str, str]) -> None:
        """Merge the two persons of a link unless a guard refuses; notes old persons in ``before``."""
        person_a, person_b = self.person_of(link.a), self.person_of(link.b)
        if person_a == person_b:
            return
        members_a, members_b = self.members(person_a), self.members(person_b)
        owners = self._owners(person_a, members_a) | self._owners(person_b, members_b)
        withheld = next((i for i in (link.a, link.b) if self.consent_of(i) in WITHHELD), None)
        merged = members_a | members_b
        refusal = self._refusal(link, owners, 0 if withheld else len(merged))
        if refusal is not None:
            conflicts.append(refusal)
            return
        if withheld is not None:
            # Not stitched, yet still theirs: no other customer may take this session or id.
            self._claims[person_b if withheld == link.a else person_a] = withheld
            return
        customers = [m for m in merged if m.startswith("customer:")]
        canonical = customers[0] if customers else min(merged)
        claim = self._claims.pop(person_a, None) or self._claims.pop(person_b, None)
        if claim is not None:
            self._claims[canonical] = claim
        self._members.pop(person_a, None)
        self._members.pop(person_b, None)
        self._members[canonical] = merged
        for ident in merged:
            before.setdefault(ident, self.person_of(ident))
            self._person[ident] = canonical

    def _refusal(self, link: Link, owners: set[str], size: int) -> Conflict | None:
        if len(owners) > 1:
            customers = sorted(owners)
            session = next((i for i in (link.a, link.b) if i.startswith("session:")), None)
            direct = session is not None and any(i.startswith("customer:") for i in (link.a, link.b))
            kind = "session-customer" if direct else "customers"
            reason = f"would join {customers[0]} and {customers[1]}; the earlier link stands"
            return Conflict(kind, tuple(sorted({link.a, link.b, *customers})), link.event_id, reason)
        if size > self.policy.max_identifiers:
            reason = f"a person of {size} identifiers exceeds the cap of {self.policy.max_identifiers}"
            return Conflict("cap", (link.a, link.b), link.event_id, reason)
        return None


def stitch(events: Iterable[Mapping[str, Any]], policy: StitchPolicy | None = None) -> IdentityGraph:
    """A graph from a batch of events: links applied once, in time order, with no replays."""
    graph = IdentityGraph(policy)
    graph.add_events(events)
    return graph


def attributed(events: Iterable[Mapping[str, Any]], graph: PersonLookup) -> Iterator[AttributedEvent]:
    """Each event paired with its person under ``graph``, streaming."""
    for event in events:
        yield AttributedEvent(graph.attribute(event), event)
