"""Dashboard sessions live in HQ's database: logout revokes exactly that session, for every web
process on the database and after a restart, on SQLite and PostgreSQL (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hq.storage import Storage
from hq.web import sessions
from tests.hq_web_support import USER, csrf_of, hq_app, logged_in

JOURNEY = "/v1/customers/c-7f3a9b2e41/journey"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database that several web processes (apps) share."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path}/hq.db"


@pytest.fixture
def apps(tmp_path: Path, url: str) -> Iterator[tuple[Flask, Flask]]:
    """Two web processes behind one proxy: two apps, each with its own connections, one database."""
    with hq_app(tmp_path, url) as first, hq_app(tmp_path, url) as second:
        yield first, second


def copy_of(client: FlaskClient, app: Flask) -> FlaskClient:
    """A client of ``app`` holding a copy of ``client``'s session cookie, as a thief would."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def reads(client: FlaskClient) -> bool:
    """Whether the client reads a dashboard page and the journey API; each refused as a stranger is."""
    page, api = client.get("/devices"), client.get(JOURNEY)
    if page.status_code == 302:
        assert page.headers["Location"].startswith("/login") and api.status_code == 401
        return False
    assert page.status_code == 200 and api.status_code == 200, (page.status_code, api.status_code)
    return True


def test_logout_revokes_a_copied_cookie_in_every_web_process(
    tmp_path: Path, url: str, apps: tuple[Flask, Flask]
) -> None:
    first, second = apps
    client, other = logged_in(first), logged_in(second)
    thief_here, thief_there = copy_of(client, first), copy_of(client, second)
    assert reads(thief_here) and reads(thief_there)  # the copy works while the session is open

    assert reads(client)  # a page gives the logout form its CSRF token
    assert client.post("/logout", data={"csrf": csrf_of(client)}).status_code == 302
    assert not reads(client)
    assert not reads(thief_here) and not reads(thief_there)
    with hq_app(tmp_path, url) as restarted:  # same secret_key: the signature still holds, the session not
        assert not reads(copy_of(thief_there, restarted))
    assert reads(other)  # exactly that session: another login goes on


def test_sessions_survive_a_restart_with_a_fixed_key_and_end_after_their_lifetime(
    tmp_path: Path, url: str, apps: tuple[Flask, Flask]
) -> None:
    first, _ = apps
    client = logged_in(first)
    with hq_app(tmp_path, url) as restarted:
        assert reads(copy_of(client, restarted))
    with client.session_transaction() as cookie:
        session_id = cookie[sessions.KEY]
    storage: Storage = first.extensions["hq.storage"]
    now = datetime.now(timezone.utc)
    assert storage.web_session_user(session_id, now) == USER
    assert storage.web_session_user(session_id, now + sessions.LIFETIME + timedelta(seconds=1)) is None


def test_a_new_login_replaces_the_session_the_cookie_held(apps: tuple[Flask, Flask]) -> None:
    first, _ = apps
    client = logged_in(first)
    before = copy_of(client, first)
    client.get("/login")
    assert client.post("/login", data={"name": USER, "password": "correct horse battery", "csrf": csrf_of(client)})
    assert reads(client) and not reads(before)


def test_the_database_keeps_only_hashes_and_prunes_expired_sessions(storage: Storage) -> None:
    now = datetime(2026, 12, 8, 9, tzinfo=timezone.utc)
    storage.open_web_session("secret-a", "anna", now, now + timedelta(hours=12))
    storage.open_web_session("secret-b", "ben", now, now + timedelta(hours=1))
    assert storage.web_session_user("secret-a", now) == "anna" and storage.web_session_user("secret-b", now) == "ben"
    assert storage.web_session_user("secret-c", now) is None
    cells = {str(cell) for row in storage.fetchall("SELECT * FROM web_sessions") for cell in row}
    assert not any("secret" in cell for cell in cells)

    assert storage.revoke_web_session("secret-a", now) and not storage.revoke_web_session("secret-a", now)
    assert storage.web_session_user("secret-a", now) is None and storage.web_session_user("secret-b", now) == "ben"

    later = now + timedelta(hours=2)  # b expired; a is revoked but kept until its own end
    assert storage.web_session_user("secret-b", later) is None
    storage.open_web_session("secret-d", "anna", later, later + timedelta(hours=12))
    assert storage.fetchall("SELECT COUNT(*) FROM web_sessions") == [(2,)]
    storage.open_web_session("secret-e", "anna", now + timedelta(hours=13), now + timedelta(hours=25))
    assert storage.fetchall("SELECT COUNT(*) FROM web_sessions") == [(2,)]  # a went too
