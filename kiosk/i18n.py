"""Screen languages: German and English, picked by ``?lang=``, then the cookie, then the browser.

The strings live in ``ui/translations/{lang}.json``; templates call ``t("key")``. A ``?lang=`` choice
is remembered in a cookie so a shopper's language survives navigation.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from flask import Flask, Response, g, request

from kiosk.catalog import LANGUAGES

DEFAULT = LANGUAGES[0]
COOKIE = "lang"


@cache
def strings(lang: str) -> dict[str, str]:
    """The translation table of ``lang`` (one of LANGUAGES)."""
    path = resources.files("ui") / "translations" / f"{lang}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def pick(query: str | None, cookie: str | None, accept: object) -> str:
    """The language for a request; ``accept`` is werkzeug's parsed Accept-Language."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    best = accept.best_match(LANGUAGES) if accept is not None else None  # type: ignore[attr-defined]
    return best or DEFAULT


def current() -> str:
    if "lang" not in g:
        g.lang = pick(request.args.get("lang"), request.cookies.get(COOKIE), request.accept_languages)
    return g.lang


def translate(key: str) -> str:
    """The string for ``key`` in the request's language; the key itself when it is missing."""
    return strings(current()).get(key, key)


def _remember(response: Response) -> Response:
    chosen = request.args.get("lang")
    if chosen in LANGUAGES and request.cookies.get(COOKIE) != chosen:
        response.set_cookie(COOKIE, chosen, max_age=365 * 24 * 3600, samesite="Strict")
    return response


def init_app(app: Flask) -> None:
    app.after_request(_remember)
    app.context_processor(
        lambda: {"t": translate, "lang": current(), "languages": LANGUAGES, "strings": strings(current())}
    )
