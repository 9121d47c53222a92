"""The Segment e-commerce spec's ``track`` events as touchpoint events: pure.

Browsing (Products Searched, Product List Viewed or Filtered) and Cart Viewed, Checkout Started
are page views of the ``search``, ``category``, ``cart`` and ``checkout`` pages; Product Viewed
is a ``product.viewed`` (``via`` ``browse``), Product Added a ``cart.added``, Product Added to
Wishlist a ``wishlist.added``, Order Completed a ``purchase.completed`` whose items carry
``gtin``, ``qty`` and ``price``. The spec's V1 names (Viewed Product, Added Product, Completed
Order, Viewed Product Category) are read the same. A product is named by its ``gtin``, else its
``sku``, else its ``product_id``; a product event naming none, and every other e-commerce event
(Order Refunded, Product Removed, Coupon Applied, ...), stays a custom touchpoint, which the
caller makes of any event this module returns None for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PAGES = {
    "Products Searched": "search",
    "Product List Viewed": "category",
    "Product List Filtered": "category",
    "Viewed Product Category": "category",
    "Cart Viewed": "cart",
    "Checkout Started": "checkout",
}
PRODUCT_EVENTS = {
    "Product Viewed": "product.viewed",
    "Viewed Product": "product.viewed",
    "Product Added": "cart.added",
    "Added Product": "cart.added",
    "Product Added to Wishlist": "wishlist.added",
}
ORDER_EVENTS = frozenset({"Order Completed", "Completed Order"})
PRODUCT_KEYS = ("gtin", "sku", "product_id")


def commerce_event(name: str, properties: Mapping[str, Any], event_id: str) -> tuple[str, dict[str, Any]] | None:
    """``(touchpoint event name, data)`` for an e-commerce event, or None when it is not one we map."""
    if name in PAGES:
        data: dict[str, Any] = {"page": PAGES[name]}
        for key in ("query", "list_id", "category", "order_id", "cart_id"):
            if isinstance(properties.get(key), (str, int)):
                data[key] = str(properties[key])[:200]
        if isinstance(properties.get("products"), list):
            data["items"] = items_of(properties["products"])
        return "page.viewed", data
    if name in PRODUCT_EVENTS:
        gtin = product_id(properties)
        if gtin is None:
            return None
        data = {"gtin": gtin, **_product_details(properties)}
        if PRODUCT_EVENTS[name] == "product.viewed":
            data["via"] = "browse"
        return PRODUCT_EVENTS[name], data
    if name in ORDER_EVENTS:
        order = properties.get("order_id", properties.get("checkout_id"))
        data = {
            "order_id": str(order)[:200] if isinstance(order, (str, int)) else event_id,
            "items": items_of(properties.get("products")),
        }
        for key in ("total", "revenue", "shipping", "tax", "discount"):
            if _is_number(properties.get(key)):
                data[key] = properties[key]
        if isinstance(properties.get("currency"), str):
            data["currency"] = properties["currency"][:8]
        return "purchase.completed", data
    return None


def product_id(product: Mapping[str, Any]) -> str | None:
    """A product's id for ``gtin``: its ``gtin``, else ``sku``, else ``product_id``."""
    for key in PRODUCT_KEYS:
        value = product.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:64]
    return None


def items_of(products: Any) -> list[dict[str, Any]]:
    """The spec's ``products`` as purchase items ``{"gtin", "qty", "price"}``; products without an id are left out."""
    if not isinstance(products, list):
        return []
    items = []
    for product in products:
        if not isinstance(product, dict) or (gtin := product_id(product)) is None:
            continue
        items.append({"gtin": gtin, **_product_details(product)})
    return items


def _product_details(product: Mapping[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {}
    quantity = product.get("quantity")
    details["qty"] = quantity if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0 else 1
    if _is_number(product.get("price")):
        details["price"] = product["price"]
    for key in ("name", "sku", "product_id", "variant", "currency"):
        if isinstance(product.get(key), str) and product[key]:
            details[key] = product[key][:200]
    return details


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) < 1e15
