"""The edge screens' languages: ``ui/translations/{lang}.json`` through :mod:`ui.i18n`.

Templates call ``t("key")`` and the scripts read the same table from the page; the screen deletes
the language cookie when the shopper leaves.
"""

from __future__ import annotations

from flask import Flask

from ui.i18n import Translations

TEXT = Translations()


def languages() -> tuple[str, ...]:
    return TEXT.languages()


def current() -> str:
    return TEXT.current()


def init_app(app: Flask) -> None:
    app.after_request(TEXT.remember)
    app.context_processor(
        lambda: {
            "t": TEXT.translate,
            "lang": TEXT.current(),
            "strings": TEXT.strings(TEXT.current()),
            "languages": [(code, TEXT.strings(code)["language.name"]) for code in TEXT.languages()],
        }
    )
