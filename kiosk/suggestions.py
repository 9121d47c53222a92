"""What to show next to the garments a shopper holds: "goes well with", and a customer's home.

The first source is HQ's retained ``recommendations`` message (``hq/recommend.py``): ``items`` maps
a style (or a GTIN) to the styles that go with it, ``segments`` name each segment's ``top`` items,
and ``customers`` holds, for consenting customers only, their ``segment`` and ``sizes``. Before HQ
has sent one, and to fill up a short list, the catalogue's style data stands in: other styles of
the same brand first, then the rest.

Everything here is pure and total: the message arrives over the network and is only
version-checked on the way, so any shape of it yields suggestions (maybe fewer), never an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from contract.catalog import Catalog, Product

LIMIT = 4


@dataclass(frozen=True)
class Profile:
    """A consenting customer's hints from HQ: no name, only a segment and preferred sizes."""

    segment: str | None
    sizes: tuple[str, ...]


@dataclass(frozen=True)
class Suggestions:
    products: tuple[Product, ...]
    source: str  # "hq" when any came from HQ's message, else "catalog"
    personal: bool  # the customer's segment or sizes shaped them


def profile(recommendations: Any, customer: str | None) -> Profile | None:
    """The customer's hints, only when HQ's message lists them (that is, they consented)."""
    customers = _mapping(recommendations, "customers")
    entry = customers.get(customer) if customer else None
    if not isinstance(entry, Mapping):
        return None
    segment = entry.get("segment")
    sizes = entry.get("sizes")
    sizes = tuple(s for s in sizes if isinstance(s, str)) if isinstance(sizes, list) else ()
    return Profile(segment if isinstance(segment, str) else None, sizes)


def representative(catalog: Catalog, style: str, sizes: Iterable[str] = ()) -> Product | None:
    """The row to show for a style: in stock here, in the customer's size when there is one."""
    rows = [p for p in catalog.products if p.style == style and p.stock > 0]
    if not rows:
        return None
    for size in sizes:
        for row in rows:
            if row.size.lower() == size.lower():
                return row
    return max(rows, key=lambda p: p.stock)  # max keeps the first of equals: catalogue order


def styles(catalog: Catalog) -> list[Product]:
    """One in-stock row per style, in catalogue order: the kiosk's browse grid."""
    seen: dict[str, Product | None] = {}
    for product in catalog.products:
        if product.style not in seen:
            seen[product.style] = representative(catalog, product.style)
    return [p for p in seen.values() if p is not None]


def suggest(
    catalog: Catalog, recommendations: Any, gtins: Iterable[str], customer: str | None, limit: int = LIMIT
) -> Suggestions:
    """Up to ``limit`` products, one per style, none of the styles already held."""
    held = [p for p in (catalog.get(g) for g in gtins) if p is not None]
    held_styles = {p.style for p in held}
    hints = profile(recommendations, customer)
    sizes = hints.sizes if hints else ()
    items = _mapping(recommendations, "items")
    from_hq: list[Any] = []
    for product in held:
        from_hq += _list(items.get(product.style)) + _list(items.get(product.gtin))
    if hints and hints.segment:
        from_hq += _list(_mapping(_mapping(recommendations, "segments"), hints.segment).get("top"))
    picked: dict[str, Product] = {}
    for item in from_hq:
        _add(picked, catalog, _style_of(catalog, item), held_styles, sizes, limit)
    source = "hq" if picked else "catalog"
    brands = {p.brand for p in held}
    by_brand = sorted(catalog.products, key=lambda p: p.brand not in brands)  # stable: catalogue order
    for product in by_brand:
        _add(picked, catalog, product.style, held_styles, sizes, limit)
    return Suggestions(tuple(picked.values()), source, bool(sizes) or bool(hints and hints.segment))


def _add(
    picked: dict[str, Product], catalog: Catalog, style: str | None, held: set[str], sizes: tuple[str, ...], limit: int
) -> None:
    if style is None or style in held or style in picked or len(picked) >= limit:
        return
    product = representative(catalog, style, sizes)
    if product is not None:
        picked[style] = product


def _style_of(catalog: Catalog, item: Any) -> str | None:
    """HQ names an item by style, or by GTIN when its catalogue did not know the GTIN."""
    if not isinstance(item, str):
        return None
    product = catalog.get(item)
    return product.style if product is not None else item


def _mapping(document: Any, key: str) -> Mapping[str, Any]:
    value = document.get(key) if isinstance(document, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
