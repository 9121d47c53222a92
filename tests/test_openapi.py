"""HQ's OpenAPI document: valid OpenAPI 3.1, the one HQ serves, naming every route, and true of a running HQ.

schemathesis generates requests from the document against a real ``touchpoint hq`` process and
checks that none is answered with a 5xx and that every answer's status, content type, headers
and body are the ones the document promises. The number of examples per operation is bounded so
the whole run stays around half a minute.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hq.web.openapi import document
from tests.hq_web_support import API_TOKEN, WEB_TOKEN, hq_app
from tests.segment_support import RunningHq, hq_process

FILE = Path(__file__).parent.parent / "hq" / "web" / "openapi.json"
SEGMENT = re.compile(r"/v1/(batch|track|identify|page|screen|alias|group|[tipsagb])")


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = json.loads(FILE.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_hq_serves_the_file_in_the_repository(tmp_path: Path) -> None:
    with hq_app(tmp_path) as app:
        answer = app.test_client().get("/v1/openapi.json")
    assert answer.status_code == 200
    assert answer.json == json.loads(FILE.read_text(encoding="utf-8")) == document()


def test_every_route_of_hq_is_in_the_document_and_nothing_else(tmp_path: Path) -> None:
    with hq_app(tmp_path) as app:
        routes = {
            (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
            for rule in app.url_map.iter_rules()
            for method in rule.methods or ()
            if method not in ("HEAD", "OPTIONS")
        }
    documented = {(path, method) for path, item in document()["paths"].items() for method in item}
    assert routes - documented == set(), "routes missing from hq/web/openapi.json"
    assert documented - routes == set(), "hq/web/openapi.json names routes HQ does not have"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHq]:
    with hq_process(tmp_path_factory.mktemp("openapi")) as hq:
        yield hq


# The file, which the running HQ serves (test_hq_serves_the_file_in_the_repository).
schema = schemathesis.openapi.from_path(FILE)


def credentials(path: str) -> dict[str, str]:
    """Valid credentials for each route, so generated requests reach the views, not only the 401."""
    if path == "/v1/events":
        return {"Authorization": f"Bearer {WEB_TOKEN}"}
    if SEGMENT.fullmatch(path):
        return {"Authorization": "Basic " + base64.b64encode(f"{WEB_TOKEN}:".encode()).decode()}
    return {"Authorization": f"Bearer {API_TOKEN}"}


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_hq_answers_as_the_document_says(case: Any, running: RunningHq) -> None:
    case.call_and_validate(
        base_url=running.url,
        headers=credentials(case.path),
        timeout=30,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
