"""Languages for every Touchpoint screen, edge and HQ alike.

Each UI has a folder of ``ui/translations`` with one ``{lang}.json`` per language; adding a
language is adding its file. A request's language is ``?lang=``, then the UI's cookie, then the
browser's Accept-Language, then the default. A page opened with ``?lang=`` sets the cookie, so the
choice survives navigation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

from flask import Response, g, request

COOKIE_MAX_AGE_S = 365 * 24 * 3600


@dataclass(frozen=True)
class Translations:
    """One UI's strings: ``folder`` under ``ui/translations`` ("" for the edge screens)."""

    folder: str = ""
    cookie: str = "lang"
    httponly: bool = False  # the edge's scripts delete their cookie when a shopper leaves
    default: str = "de"

    @cache  # noqa: B019 - instances are module-level constants, never collected
    def languages(self) -> tuple[str, ...]:
        """The codes of every translation file, the default first."""
        found = sorted(
            item.name.removesuffix(".json") for item in self._files().iterdir() if item.name.endswith(".json")
        )
        return (self.default, *(code for code in found if code != self.default))

    @cache  # noqa: B019
    def strings(self, lang: str) -> dict[str, str]:
        """The translation table of ``lang`` (one of :meth:`languages`)."""
        return json.loads((self._files() / f"{lang}.json").read_text(encoding="utf-8"))

    def pick(self, query: str | None, cookie: str | None, accept: object) -> str:
        """The language for a request; ``accept`` is werkzeug's parsed Accept-Language."""
        for choice in (query, cookie):
            if choice in self.languages():
                return choice
        best = accept.best_match(self.languages()) if accept is not None else None  # type: ignore[attr-defined]
        return best or self.default

    def current(self) -> str:
        """The language of the request being handled (picked once per request)."""
        key = f"lang:{self.folder}"
        if key not in g:
            setattr(
                g, key, self.pick(request.args.get("lang"), request.cookies.get(self.cookie), request.accept_languages)
            )
        return getattr(g, key)

    def translate(self, key: str) -> str:
        """The string for ``key`` in the request's language; the key itself when it is missing."""
        return self.strings(self.current()).get(key, key)

    def remember(self, response: Response) -> Response:
        """An ``after_request`` hook: a page opened with ``?lang=`` keeps the choice in the cookie.

        Only HTML pages set it: the API calls a screen's scripts make never do, so a screen that
        has just cleared a shopper's cookie does not get it back.
        """
        chosen = request.args.get("lang")
        if (
            response.mimetype == "text/html"
            and chosen in self.languages()
            and request.cookies.get(self.cookie) != chosen
        ):
            response.set_cookie(
                self.cookie, chosen, max_age=COOKIE_MAX_AGE_S, samesite="Strict", httponly=self.httponly
            )
        return response

    def _files(self) -> Traversable:
        folder = resources.files("ui") / "translations"
        return folder / self.folder if self.folder else folder
