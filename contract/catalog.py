"""The product catalogue format both sides speak: one row per GTIN (a size of a colour of a style).

HQ sends it as the retained ``catalog`` message and the edge reads it from ``[catalog] path``;
docs/architecture.md fixes the fields. Parsing is pure and strict: ``parse`` either returns a whole
:class:`Catalog` or raises :class:`CatalogError` naming the row and field, so a bad document
never half-replaces a good one. ``sample_path`` is the bundled fictional catalogue.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, TypeGuard

from common.errors import TouchpointError

LANGUAGES = ("de", "en")
PRICE = re.compile(r"\d{1,6}\.\d{2}")
LF_TAG = re.compile(r"[0-9A-F]{10}")
IMAGE_SUFFIXES = (".svg", ".png", ".jpg", ".jpeg", ".webp", ".avif", ".gif")  # what a row's image may be
SEARCH_LIMIT = 50


class CatalogError(TouchpointError, ValueError):
    """A catalogue document is not valid; the message names the row and field."""


@dataclass(frozen=True)
class Product:
    gtin: str
    style: str
    name: Mapping[str, str]  # language -> name; every language of LANGUAGES is present
    brand: str
    colour: str
    size: str
    price: Decimal
    image: str
    stock: int
    tags: tuple[str, ...] = ()

    def display_name(self, lang: str) -> str:
        return self.name.get(lang) or self.name[LANGUAGES[0]]

    def as_json(self, lang: str) -> dict[str, Any]:
        """The row as the API returns it (price as a string, name in ``lang``)."""
        return {
            "gtin": self.gtin,
            "style": self.style,
            "name": self.display_name(lang),
            "brand": self.brand,
            "colour": self.colour,
            "size": self.size,
            "price": str(self.price),
            "image": self.image,
            "stock": self.stock,
        }


@dataclass(frozen=True)
class Catalog:
    version: str
    currency: str
    products: tuple[Product, ...]
    origin: str  # "downlink", a file path, or "sample"
    image_root: Path | None  # where relative image paths are served from

    @property
    def images(self) -> frozenset[str]:
        """The image paths the rows name: all the edge serves from ``image_root``."""
        return self._images  # type: ignore[attr-defined]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_images", frozenset(p.image for p in self.products))
        by_gtin = {p.gtin: p for p in self.products}
        by_tag = {tag: p.gtin for p in self.products for tag in p.tags}
        object.__setattr__(self, "_by_gtin", by_gtin)
        object.__setattr__(self, "_by_tag", by_tag)

    def get(self, gtin: str) -> Product | None:
        return self._by_gtin.get(gtin)  # type: ignore[attr-defined]

    def gtin_for_tag(self, tag_id: str) -> str | None:
        """The GTIN a 125 kHz tag id is mapped to by a row's ``tags``."""
        return self._by_tag.get(tag_id.upper())  # type: ignore[attr-defined]

    def siblings(self, gtin: str) -> list[Product]:
        """Other sizes and colours of the same style that this store has in stock."""
        product = self.get(gtin)
        if product is None:
            return []
        return [p for p in self.products if p.style == product.style and p.gtin != gtin and p.stock > 0]

    def row_json(self, product: Product, lang: str, with_siblings: bool = True) -> dict[str, Any]:
        """A row as the screens show it: with image address, currency and in-stock siblings."""
        out = product.as_json(lang)
        out["image_url"] = f"/catalog/{product.image}"
        out["currency"] = self.currency
        if with_siblings:
            out["siblings"] = [
                {"gtin": s.gtin, "colour": s.colour, "size": s.size, "stock": s.stock}
                for s in self.siblings(product.gtin)
            ]
        return out

    def variant(self, style: str, colour: str, size: str) -> Product | None:
        """The row of ``style`` in ``colour`` and ``size`` (case-insensitive), if there is one."""
        for p in self.products:
            if p.style == style and p.colour.lower() == colour.lower() and p.size.lower() == size.lower():
                return p
        return None

    def search(self, text: str, limit: int = SEARCH_LIMIT) -> list[Product]:
        """Rows whose name (any language), brand, style or colour contain every word of ``text``."""
        words = text.lower().split()
        if not words:
            return []
        hits = []
        for p in self.products:
            haystack = " ".join([*p.name.values(), p.brand, p.style, p.colour, p.gtin]).lower()
            if all(word in haystack for word in words):
                hits.append(p)
                if len(hits) >= limit:
                    break
        return hits


def gtin_check_digit(first13: str) -> int:
    """GS1 mod-10 check digit of the first 13 digits of a GTIN-14."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(first13))
    return (10 - total % 10) % 10


def valid_gtin(value: Any) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and len(value) == 14
        and value.isdigit()
        and gtin_check_digit(value[:13]) == int(value[13])
    )


def parse(document: Any, *, origin: str, image_root: Path | None) -> Catalog:
    """Validate a catalogue document; raises CatalogError naming the first bad row and field."""
    if not isinstance(document, Mapping):
        raise CatalogError("catalogue: must be a JSON object")
    version = document.get("version")
    if not isinstance(version, str) or not version:
        raise CatalogError("version: missing or not a string")
    currency = document.get("currency", "EUR")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise CatalogError(f"currency: {currency!r} is not an ISO 4217 code like 'EUR'")
    rows = document.get("products")
    if not isinstance(rows, list) or not rows:
        raise CatalogError("products: must be a non-empty list")
    products: list[Product] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        product = _product(index, row)
        if product.gtin in seen:
            raise CatalogError(f"products[{index}].gtin: {product.gtin} appears twice")
        seen.add(product.gtin)
        products.append(product)
    return Catalog(version, currency, tuple(products), origin, image_root)


def _product(index: int, row: Any) -> Product:
    where = f"products[{index}]"
    if not isinstance(row, Mapping):
        raise CatalogError(f"{where}: must be an object")

    def text(key: str) -> str:
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            raise CatalogError(f"{where}.{key}: missing or not a non-empty string (got {value!r})")
        return value

    gtin = row.get("gtin")
    if not valid_gtin(gtin):
        raise CatalogError(f"{where}.gtin: {gtin!r} is not a GTIN-14 with a valid check digit")
    name = row.get("name")
    if isinstance(name, str) and name.strip():
        names = {lang: name for lang in LANGUAGES}
    elif isinstance(name, Mapping) and name and all(isinstance(v, str) and v.strip() for v in name.values()):
        names = {lang: name.get(lang) or next(iter(name.values())) for lang in LANGUAGES}
    else:
        raise CatalogError(f'{where}.name: must be a string or an object like {{"de": ..., "en": ...}}')
    price_text = row.get("price")
    if not isinstance(price_text, str) or not PRICE.fullmatch(price_text):
        raise CatalogError(f"{where}.price: {price_text!r} is not a price string like '49.95'")
    price = Decimal(price_text)
    stock = row.get("stock")
    if not isinstance(stock, int) or isinstance(stock, bool) or stock < 0:
        raise CatalogError(f"{where}.stock: {stock!r} is not a whole number >= 0")
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and LF_TAG.fullmatch(t) for t in tags):
        raise CatalogError(f"{where}.tags: must be a list of 10-digit upper-case hex tag ids")
    image = text("image")
    if ".." in Path(image).parts or image.startswith("/"):
        raise CatalogError(f"{where}.image: {image!r} must be a relative path inside the catalogue")
    if Path(image).suffix.lower() not in IMAGE_SUFFIXES:
        raise CatalogError(f"{where}.image: {image!r} must name an image file ({', '.join(IMAGE_SUFFIXES)})")
    return Product(
        gtin=gtin,
        style=text("style"),
        name=names,
        brand=text("brand"),
        colour=text("colour"),
        size=text("size"),
        price=price,
        image=image,
        stock=stock,
        tags=tuple(tags),
    )


def sample_path() -> Path:
    """The bundled fictional catalogue (company prefix 4012345)."""
    return Path(str(resources.files("contract") / "sample" / "catalog.json"))


def read_file(path: Path, origin: str) -> Catalog:
    """Read and validate a catalogue file; raises CatalogError for unreadable or invalid JSON."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CatalogError(f"{path}: cannot be read ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise CatalogError(f"{path}: not valid JSON ({error})") from None
    return parse(document, origin=origin, image_root=path.parent)
