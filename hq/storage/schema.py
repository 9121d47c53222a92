"""HQ's database schema as numbered migrations, one text for SQLite and PostgreSQL.

Each migration is a list of statements with ``{type}`` placeholders filled per dialect (types, and
the odd expression that differs, such as ``{hour_of_time}``), applied once in its own transaction
and recorded in ``schema_version``. Add a feature by appending a migration; never edit one that
has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPES = {
    "sqlite": {
        "ts": "TEXT",
        "json": "TEXT",
        "bytes": "BLOB",
        "big": "INTEGER",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        # hq.core.records.hour_of of a stored time. Cut from the text ('YYYY-MM-DDTHH', always
        # UTC and four-digit years) because strftime rounds fractions to milliseconds, which
        # would move 13:59:59.9996 into 14:00; a whole hour's seconds divide exactly.
        "hour_of_time": "CAST(strftime('%s', substr(time, 1, 13) || ':00') AS INTEGER) / 3600",
    },
    "postgres": {
        "ts": "TIMESTAMPTZ",
        "json": "JSONB",
        "bytes": "BYTEA",
        "big": "BIGINT",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "hour_of_time": "floor(extract(epoch from time) / 3600)::bigint",
    },
}

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "events, devices, seq ranges, dead letters",
        [
            # Every touchpoint event HQ holds, edge or digital; (source, id) makes inserts idempotent.
            # session_id, customer, anonymous_id and gtin are copied out of data for analytics indexes.
            """CREATE TABLE events (
            source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, time {ts} NOT NULL,
            seq {big}, store TEXT, device TEXT, channel TEXT NOT NULL,
            session_id TEXT, customer TEXT, anonymous_id TEXT, gtin TEXT,
            data {json} NOT NULL, received_at {ts} NOT NULL,
            PRIMARY KEY (source, id))""",
            "CREATE INDEX events_customer_time ON events (customer, time)",
            "CREATE INDEX events_anonymous_time ON events (anonymous_id, time)",
            "CREATE INDEX events_session ON events (session_id)",
            "CREATE INDEX events_gtin_time ON events (gtin, time)",
            "CREATE INDEX events_type_time ON events (type, time)",
            "CREATE INDEX events_device_seq ON events (store, device, seq)",
            # One row per edge device: the seq prefix HQ holds without a hole, counters, last status.
            """CREATE TABLE devices (
            store TEXT NOT NULL, device TEXT NOT NULL,
            contiguous_seq {big} NOT NULL DEFAULT 0, stored {big} NOT NULL DEFAULT 0,
            last_seen {ts}, state TEXT NOT NULL DEFAULT 'unknown', backlog {big} NOT NULL DEFAULT 0,
            status {json}, status_at {ts},
            PRIMARY KEY (store, device))""",
            # Stored seq ranges above contiguous_seq; the holes between them are the gaps.
            """CREATE TABLE seq_ranges (
            store TEXT NOT NULL, device TEXT NOT NULL, lo {big} NOT NULL, hi {big} NOT NULL,
            PRIMARY KEY (store, device, lo))""",
            """CREATE TABLE dead_letters (
            n {serial}, received_at {ts} NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,
            kind TEXT NOT NULL, raw {bytes} NOT NULL, source TEXT, event_id TEXT)""",
            "CREATE INDEX dead_letters_received ON dead_letters (received_at)",
        ],
    ),
    (
        2,
        "consent statements; link events by arrival",
        [
            # Consent given or withdrawn through the API (PUT /v1/customers/{customer}/consent), the
            # latest per customer; consent carried by link events stays in those events.
            """CREATE TABLE consents (
            customer TEXT PRIMARY KEY, state TEXT NOT NULL, time {ts} NOT NULL, id TEXT NOT NULL)""",
            # The identity graph catches up on link events that arrived since its last look.
            "CREATE INDEX events_type_received ON events (type, received_at)",
        ],
    ),
    (
        3,
        "events by time; per-hour change versions",
        [
            # Analytics reads events by time range, whatever their type.
            "CREATE INDEX events_time ON events (time)",
            # A version per UTC hour of event time (hq.core.records.hour_of), bumped in the transaction that
            # stores or deletes one of its events, so per-hour caches know when they went stale. writer
            # is a random id per storage connection: two PostgreSQL ingest workers bumping the current
            # hour then never wait on one row's lock. An hour's version is the SUM over its writers.
            """CREATE TABLE event_hours (
            hour {big} NOT NULL, writer {big} NOT NULL, version {big} NOT NULL,
            PRIMARY KEY (hour, writer))""",
            # Events stored before this migration: version 1 of their hours, under writer 0 (no connection's).
            "INSERT INTO event_hours (hour, writer, version) SELECT DISTINCT {hour_of_time}, 0, 1 FROM events",
        ],
    ),
    (
        4,
        "identity in the database: link evidence, consent statements, raw components, persons",
        [
            # Every link an event claims (accepted or refused by stitching), ends in sorted order, as
            # hq.core.identity.Link; source and event_id say which event, so erasure can remove it.
            """CREATE TABLE identity_links (
            a TEXT NOT NULL, b TEXT NOT NULL, time {ts} NOT NULL, source TEXT NOT NULL, event_id TEXT NOT NULL,
            PRIMARY KEY (a, b, source, event_id))""",
            "CREATE INDEX identity_links_b ON identity_links (b)",
            "CREATE INDEX identity_links_event ON identity_links (source, event_id)",
            # Every consent statement an event carried (the API's are in consents).
            """CREATE TABLE identity_consents (
            customer TEXT NOT NULL, time {ts} NOT NULL, source TEXT NOT NULL, event_id TEXT NOT NULL,
            state TEXT NOT NULL, PRIMARY KEY (customer, source, event_id))""",
            "CREATE INDEX identity_consents_event ON identity_consents (source, event_id)",
            # Raw components: identifiers connected by any link, labelled by one of them. A new link
            # replays only its component (hq.storage.identity).
            "CREATE TABLE identity_members (identifier TEXT PRIMARY KEY, component TEXT NOT NULL)",
            "CREATE INDEX identity_members_component ON identity_members (component)",
            # The result: every identifier of a person with more than one, and its person's canonical id.
            "CREATE TABLE persons (identifier TEXT PRIMARY KEY, person TEXT NOT NULL)",
            "CREATE INDEX persons_person ON persons (person)",
            # Work a migration leaves to Python (building identity from events stored before it).
            "CREATE TABLE backfills (name TEXT PRIMARY KEY, done_at {ts})",
            "INSERT INTO backfills (name) SELECT 'identity' FROM events LIMIT 1",
        ],
    ),
    (
        5,
        "touchpoint rollups: session parts, items, identifiers, dwell, ratings, size requests, purchases per hour",
        [
            # What a touchpoint report needs, per UTC hour of event time (hq.core.facts.Facts of each hour,
            # filed by hq.storage.rollups in the transaction that stores the events). Rows are identity-free:
            # identifiers are attribution identifiers, resolved to persons when a report reads them. Times
            # are microseconds since 1970 (exact, and arithmetic is the same on both databases).
            # A session's part within one hour: skey is 'e:' source + session id for edge sessions, 'v:' day,
            # identifier and fallback for digital visits (visit_day and ident repeat those for stitching).
            """CREATE TABLE rollup_sessions (
            hour {big} NOT NULL, point TEXT NOT NULL, skey TEXT NOT NULL, visit_day TEXT, ident TEXT,
            store TEXT, start_us {big} NOT NULL, end_us {big} NOT NULL, ended_us {big}, ended_s DOUBLE PRECISION,
            PRIMARY KEY (hour, point, skey))""",
            # The GTINs each part showed, and the attribution identifiers of its events.
            """CREATE TABLE rollup_seen (
            hour {big} NOT NULL, point TEXT NOT NULL, skey TEXT NOT NULL, gtin TEXT NOT NULL,
            PRIMARY KEY (hour, point, skey, gtin))""",
            """CREATE TABLE rollup_idents (
            hour {big} NOT NULL, point TEXT NOT NULL, skey TEXT NOT NULL, ident TEXT NOT NULL,
            PRIMARY KEY (hour, point, skey, ident))""",
            # Dwell times and ratings as counts of each value: exact medians and shares, few rows.
            """CREATE TABLE rollup_dwell (
            hour {big} NOT NULL, point TEXT NOT NULL, seconds DOUBLE PRECISION NOT NULL, n {big} NOT NULL,
            PRIMARY KEY (hour, point, seconds))""",
            """CREATE TABLE rollup_ratings (
            hour {big} NOT NULL, point TEXT NOT NULL, scale TEXT NOT NULL, score INTEGER NOT NULL, n {big} NOT NULL,
            PRIMARY KEY (hour, point, scale, score))""",
            # The first size.requested ('asked') and size.fulfilled ('done') of each request in the hour.
            """CREATE TABLE rollup_sizes (
            hour {big} NOT NULL, store TEXT NOT NULL, request_id TEXT NOT NULL, what TEXT NOT NULL,
            first_us {big} NOT NULL, PRIMARY KEY (hour, store, request_id, what))""",
            # Purchased GTINs: by attribution identifier (conversion of a person's sessions) and by store (the till).
            """CREATE TABLE rollup_purchases (
            hour {big} NOT NULL, ident TEXT NOT NULL, gtin TEXT NOT NULL, at_us {big} NOT NULL,
            PRIMARY KEY (hour, ident, gtin, at_us))""",
            "CREATE INDEX rollup_purchases_at ON rollup_purchases (at_us)",
            """CREATE TABLE rollup_pos (
            hour {big} NOT NULL, store TEXT NOT NULL, gtin TEXT NOT NULL, at_us {big} NOT NULL,
            PRIMARY KEY (hour, store, gtin, at_us))""",
            "CREATE INDEX rollup_pos_sold ON rollup_pos (store, gtin, at_us)",
            # Bumped whenever persons change, so a report cached under it knows a late link moved it.
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value {big} NOT NULL)",
            "INSERT INTO counters (name, value) VALUES ('identity', 0)",
            "INSERT INTO backfills (name) SELECT 'rollups' FROM events LIMIT 1",
        ],
    ),
    (
        6,
        "dashboard sessions, revocable on logout",
        [
            # A dashboard login (hq.web.sessions, hq.storage.web_sessions): the SHA-256 of its random id, so
            # that a copy of this table opens no session; its user, its end; revoked_at once logged out. Every
            # web process reads it on every request that uses a session; expired rows go at the next login.
            """CREATE TABLE web_sessions (
            id_hash TEXT PRIMARY KEY, username TEXT NOT NULL, created_at {ts} NOT NULL, expires_at {ts} NOT NULL,
            revoked_at {ts})""",
            "CREATE INDEX web_sessions_expires ON web_sessions (expires_at)",
        ],
    ),
]

LATEST = MIGRATIONS[-1][0]


@dataclass(frozen=True)
class Migration:
    version: int
    title: str
    statements: tuple[str, ...]


def migrations(dialect: str) -> list[Migration]:
    """The migrations with their types filled in for ``sqlite`` or ``postgres``."""
    types = TYPES[dialect]
    return [Migration(v, title, tuple(s.format(**types) for s in stmts)) for v, title, stmts in MIGRATIONS]


def pending(dialect: str, current: int) -> list[Migration]:
    return [m for m in migrations(dialect) if m.version > current]


def version_table(dialect: str) -> str:
    return (
        "CREATE TABLE IF NOT EXISTS schema_version "
        f"(version INTEGER PRIMARY KEY, title TEXT NOT NULL, applied_at {TYPES[dialect]['ts']} NOT NULL)"
    )
