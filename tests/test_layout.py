"""The layout's rules that import-linter cannot see: module size, SQL only in ``hq/storage``, every
package described in docs/architecture.md. (Import rules are import-linter contracts in pyproject.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = ("common", "contract", "drivers", "sync", "kiosk", "hq", "ui", "touchpoint")
MAX_LINES = 500
# SQL as this project writes it: upper-case verbs (prose says "select", never "SELECT").
SQL = re.compile(r"\b(SELECT|INSERT INTO|DELETE FROM|CREATE (TABLE|INDEX)|UPDATE \w+ SET)\b")


def modules(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules(*PACKAGES), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_the_size_limit(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_hq_writes_sql_only_in_its_storage_package() -> None:
    outside = [p for p in modules("hq") if "storage" not in p.relative_to(ROOT / "hq").parts]
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in outside
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SQL.search(line)
    ]
    assert offenders == []
    assert any(SQL.search(p.read_text(encoding="utf-8")) for p in modules("hq/storage")), "the pattern finds SQL"


def test_every_package_has_its_paragraph_in_the_architecture_document() -> None:
    document = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [package for package in PACKAGES if f"**`{package}/`**" not in document]
    assert missing == []
