"""'Goes well with' and the personal home: HQ's recommendations first, the catalogue's style data
before HQ's first message; consent decides whether a customer's hints are used; any shape of the
message gives suggestions, never an error."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contract import catalog as catalogue
from kiosk.suggestions import Profile, profile, representative, styles, suggest

CATALOG = catalogue.read_file(catalogue.sample_path(), "sample")
SHIRT_M = "04012345010015"  # LS-100 (Nordlicht)
JEANS = "04012345030013"  # JN-300 (Flussblau)
MESSAGE = {
    "version": "2026-11-23T10:00:00.000Z",
    "store": "test-store",
    "items": {"LS-100": ["JN-300", "XX-999", "TS-200"], "04012345030013": ["RO-800"]},
    "segments": {"frequent": {"customers": 3, "top": ["JA-600", "LS-100"]}},
    "customers": {"c-consented-1": {"segment": "frequent", "sizes": ["L", "XL"]}},
}


def style_list(found: Any) -> list[str]:
    return [p.style for p in found.products]


def test_hq_items_come_first_and_the_catalogue_fills_up() -> None:
    found = suggest(CATALOG, MESSAGE, [SHIRT_M], None)
    assert found.source == "hq" and not found.personal
    assert style_list(found)[:2] == ["JN-300", "TS-200"]  # XX-999 is not sold here: skipped
    assert len(found.products) == 4 and "LS-100" not in style_list(found)
    assert all(p.stock > 0 for p in found.products)


def test_an_item_named_by_gtin_and_several_garments() -> None:
    found = suggest(CATALOG, MESSAGE, [SHIRT_M, JEANS], None)
    assert style_list(found)[:2] == ["TS-200", "RO-800"]  # JN-300 is held, so not suggested


def test_before_hqs_first_message_the_same_brand_comes_first() -> None:
    found = suggest(CATALOG, None, [SHIRT_M], None)
    assert found.source == "catalog"
    assert style_list(found)[0] == "TS-200"  # the only other Nordlicht style
    assert len(found.products) == 4


def test_a_consented_customer_gets_their_segment_and_sizes() -> None:
    found = suggest(CATALOG, MESSAGE, [], "c-consented-1")
    assert found.personal and found.source == "hq"
    assert [(p.style, p.size) for p in found.products[:2]] == [("JA-600", "L"), ("LS-100", "L")]


def test_a_customer_hq_does_not_list_gets_nothing_personal() -> None:
    assert profile(MESSAGE, "c-unknown-22") is None
    assert profile(MESSAGE, None) is None
    found = suggest(CATALOG, MESSAGE, [], "c-unknown-22")
    assert not found.personal and found.source == "catalog"
    assert profile(MESSAGE, "c-consented-1") == Profile("frequent", ("L", "XL"))


def test_representative_prefers_the_customers_size_then_the_most_stock() -> None:
    assert representative(CATALOG, "PU-400", ["M"]).gtin == "04012345041019"  # grau M is sold out
    assert representative(CATALOG, "PU-400").stock == 5
    assert representative(CATALOG, "NOPE") is None


def test_browse_has_one_in_stock_row_per_style() -> None:
    rows = styles(CATALOG)
    assert [p.style for p in rows] == list(dict.fromkeys(p.style for p in CATALOG.products))
    assert all(p.stock > 0 for p in rows)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(["LS-100", "JN-300", SHIRT_M, "frequent", "c-consented-1", "L"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "items",
                    "segments",
                    "customers",
                    "top",
                    "segment",
                    "sizes",
                    "LS-100",
                    "frequent",
                    "c-consented-1",
                    SHIRT_M,
                ]
            )
            | st.text(max_size=4),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    JSON,
    st.lists(st.sampled_from([SHIRT_M, JEANS, "0", "x"]), max_size=3),
    st.sampled_from([None, "c-consented-1", "x"]),
)
def test_any_message_gives_suggestions_never_an_error(message: Any, gtins: list[str], customer: str | None) -> None:
    found = suggest(CATALOG, message, gtins, customer)
    held = {CATALOG.get(g).style for g in gtins if CATALOG.get(g)}
    assert 0 < len(found.products) <= 4
    assert len({p.style for p in found.products}) == len(found.products)
    assert not held & {p.style for p in found.products}
    assert all(p.stock > 0 for p in found.products)
