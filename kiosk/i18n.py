"""Screen languages: one ``ui/translations/{lang}.json`` file each, picked by ``?lang=``, then the
cookie, then the browser.

Adding a language is adding its file (with every key of ``de.json``); templates call ``t("key")``
and the scripts read the same table from the page. A ``?lang=`` choice is remembered in a cookie so a
shopper's language survives navigation; the screen deletes it when the shopper leaves.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from flask import Flask, Response, g, request

DEFAULT = "de"
COOKIE = "lang"


@cache
def languages() -> tuple[str, ...]:
    """The codes of every translation file, the default first."""
    folder = resources.files("ui") / "translations"
    found = sorted(item.name.removesuffix(".json") for item in folder.iterdir() if item.name.endswith(".json"))
    return (DEFAULT, *(code for code in found if code != DEFAULT))


@cache
def strings(lang: str) -> dict[str, str]:
    """The translation table of ``lang`` (one of :func:`languages`)."""
    path = resources.files("ui") / "translations" / f"{lang}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def pick(query: str | None, cookie: str | None, accept: object) -> str:
    """The language for a request; ``accept`` is werkzeug's parsed Accept-Language."""
    for choice in (query, cookie):
        if choice in languages():
            return choice
    best = accept.best_match(languages()) if accept is not None else None  # type: ignore[attr-defined]
    return best or DEFAULT


def current() -> str:
    if "lang" not in g:
        g.lang = pick(request.args.get("lang"), request.cookies.get(COOKIE), request.accept_languages)
    return g.lang


def translate(key: str) -> str:
    """The string for ``key`` in the request's language; the key itself when it is missing."""
    return strings(current()).get(key, key)


def _remember(response: Response) -> Response:
    """A page opened with ``?lang=`` sets the cookie; the API calls its scripts make never do, so
    a screen that has just cleared the shopper's cookie does not get it back."""
    chosen = request.args.get("lang")
    if response.mimetype == "text/html" and chosen in languages() and request.cookies.get(COOKIE) != chosen:
        response.set_cookie(COOKIE, chosen, max_age=365 * 24 * 3600, samesite="Strict")
    return response


def init_app(app: Flask) -> None:
    app.after_request(_remember)
    app.context_processor(lambda: {
        "t": translate, "lang": current(), "strings": strings(current()),
        "languages": [(code, strings(code)["language.name"]) for code in languages()],
    })
