"""``GET /v1/openapi.json``: the OpenAPI 3.1 document of every HQ route, the file beside this module.

A file, not generated from the views: it is reviewed like code, tests/test_openapi.py holds it
to the app's routes and to openapi-spec-validator, and schemathesis holds the running HQ to it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__, url_prefix="/v1")


@cache
def document() -> dict[str, Any]:
    """The document as shipped in the package (read once)."""
    return json.loads(resources.files("hq.web").joinpath("openapi.json").read_text(encoding="utf-8"))


@bp.get("/openapi.json")
def openapi() -> Response:
    """The document, for integrators and API tools."""
    return jsonify(document())
