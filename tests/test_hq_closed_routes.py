"""Every HQ route but event intake, ``/healthz`` and the login page needs a dashboard session or the
API token; ``/metrics`` needs the metrics token or the monitoring listener (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from common.webserver import MONITORING
from hq.core import segment
from tests.hq_web_support import API_TOKEN, METRICS_TOKEN, WEB_TOKEN, bearer, hq_app, logged_in

# Intake (the Segment API's paths take a write key: 400 or 401 without one), health, login, CSS, and
# the API's OpenAPI document (what a shop's developers integrate against; it is in the repository too).
OPEN = {"/v1/events", *segment.PATHS, "/v1/openapi.json", "/healthz", "/login"}
OPEN |= {"/static/hq/<path:filename>", "/static/<path:filename>"}
EXAMPLE = {"customer": "c-7f3a9b2e41", "filename": "hq.css"}


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    with hq_app(tmp_path) as app:
        yield app


def routes(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, with example values for its parameters."""
    found = []
    for rule in app.url_map.iter_rules():
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", EXAMPLE[name]).replace(f"<path:{name}>", EXAMPLE[name])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, path if rule.rule not in OPEN else rule.rule))
    return found


def test_every_route_but_intake_health_and_login_refuses_an_anonymous_caller(app: Flask) -> None:
    client = app.test_client()
    closed = [(method, path) for method, path in routes(app) if path not in OPEN and path != "/metrics"]
    assert ("GET", "/v1/devices") in closed and ("GET", "/v1/dead-letters") in closed
    for method, path in closed:
        answer = client.open(path, method=method)
        if path.startswith("/v1/"):
            assert answer.status_code == 401, (method, path)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        else:  # dashboard pages send a browser to the login form, and forms need a session too
            assert answer.status_code in (302, 400), (method, path, answer.status_code)
            assert answer.status_code == 400 or "/login" in answer.headers["Location"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/login").status_code == 200
    assert client.post("/v1/events", json=[], headers=bearer("wrong")).status_code == 401


def test_devices_and_dead_letters_answer_the_api_token_and_a_session(app: Flask) -> None:
    client = app.test_client()
    for path in ("/v1/devices", "/v1/dead-letters"):
        assert client.get(path, headers=bearer(API_TOKEN)).status_code == 200
        assert client.get(path, headers=bearer(WEB_TOKEN)).status_code == 401  # an intake token reads nothing
        assert client.get(path, headers=bearer(API_TOKEN + "x")).status_code == 401
    session = logged_in(app)
    assert session.get("/v1/devices").status_code == 200 and session.get("/v1/dead-letters").status_code == 200


def test_metrics_need_the_metrics_token_or_the_monitoring_listener(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(API_TOKEN)).status_code == 401
    assert "metrics_token" in client.get("/metrics").get_json()["error"]
    scraped = client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert scraped.status_code == 200 and "touchpoint_hq_devices" in scraped.text
    assert client.get("/metrics", environ_base={MONITORING: True}).status_code == 200


def test_without_a_metrics_token_metrics_are_closed_on_the_main_listener(tmp_path: Path) -> None:
    with hq_app(tmp_path, web={"metrics_token": ""}) as app:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


@pytest.mark.parametrize(
    ("web", "secure"),
    [
        ({}, False),  # 127.0.0.1: a browser on this machine, no TLS to ask for
        ({"listen": "0.0.0.0:8090"}, True),  # behind the TLS proxy
        ({"listen": "0.0.0.0:8090", "secure_cookies": "false"}, False),
        ({"secure_cookies": True}, True),
    ],
)
def test_session_cookies_are_secure_unless_served_on_loopback(tmp_path: Path, web: dict, secure: bool) -> None:
    with hq_app(tmp_path, web=web) as app:
        client = app.test_client()
        cookie = client.get("/login").headers["Set-Cookie"]
        assert ("; Secure" in cookie) is secure, cookie
