"""The values ``data`` fields may hold, whatever the event type: what no real event sends is refused.

Identifiers are non-empty strings of at most ``MAX_TEXT`` characters (a number is no customer
token: it would stitch to the string of its digits; an anonymous id may be null); GTINs the same
or null (a tag that is no SGTIN); EPCs non-empty; a purchase's items each a GTIN, a whole quantity
from 1 and a price that is a non-negative decimal. ``objection`` names the first broken field and never raises, whatever
JSON it is given; ``contract.envelope.check_data`` turns it into an ``EnvelopeError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

MAX_TEXT = 200  # characters of an identifier, GTIN, EPC or touchpoint label
IDENTIFIERS = ("session_id", "customer", "anonymous_id", "order_id", "request_id", "token", "store", "zone")
# A signed-in shopper's SDK message may carry only its user id: its anonymous id is null, not made up.
NULLABLE_IDENTIFIERS = frozenset({"anonymous_id"})
NULLABLE_GTINS = ("gtin", "requested_gtin")
LABELS = ("touchpoint", "epc")  # free text, bounded like identifiers
MAX_QTY = 1_000_000
MAX_PRICE = 10**12
PRICE_TEXT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")
PRICE_RULE = 'must be a non-negative decimal, as a string ("49.95") or a number'


def text_objection(value: Any) -> str | None:
    """Why ``value`` is no identifier or label, or None."""
    if not isinstance(value, str):
        return f"must be a string, not {_kind(value)}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_TEXT:
        return f"longer than {MAX_TEXT} characters"
    return None


def price_objection(value: Any) -> str | None:
    """Why ``value`` is no price, or None: ``"49.95"``, ``49.95`` and ``0`` are; ``"-1e9"`` is not."""
    if isinstance(value, str):
        return None if PRICE_TEXT.fullmatch(value) else PRICE_RULE
    if isinstance(value, bool) or not isinstance(value, int | float):
        return PRICE_RULE
    return None if math.isfinite(value) and 0 <= value < MAX_PRICE else PRICE_RULE


def qty_objection(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_QTY:
        return None
    return f"must be a whole number from 1 to {MAX_QTY}"


def objection(data: Mapping[str, Any]) -> str | None:
    """``data.{field}: why`` for the first field whose value breaks its rule; None when all hold."""
    for name in IDENTIFIERS + LABELS:
        if name not in data or (data[name] is None and name in NULLABLE_IDENTIFIERS):
            continue
        if why := text_objection(data[name]):
            return f"data.{name}: {why}"
    for name in NULLABLE_GTINS:
        if name in data and data[name] is not None and (why := text_objection(data[name])):
            return f"data.{name}: {why} (or null)"
    if "gtins" in data:
        gtins = data["gtins"]
        if not isinstance(gtins, list):
            return "data.gtins: must be a list"
        for i, gtin in enumerate(gtins):
            if why := text_objection(gtin):
                return f"data.gtins[{i}]: {why}"
    if "items" in data:
        return items_objection(data["items"])
    return None


def items_objection(items: Any) -> str | None:
    """A purchase's ``items``: a list of ``{"gtin", "qty", "price"}`` objects."""
    if not isinstance(items, list):
        return "data.items: must be a list of objects with gtin, qty, price"
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return f"data.items[{i}]: must be an object with gtin, qty, price"
        for field, rule in (("gtin", text_objection), ("qty", qty_objection), ("price", price_objection)):
            if field not in item:
                return f"data.items[{i}].{field}: required"
            if why := rule(item[field]):
                return f"data.items[{i}].{field}: {why}"
    return None


def _kind(value: Any) -> str:
    """A JSON value's kind for a reason (never the value: it may be long, or a customer's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
