"""The catalogue: the sample, validation with the row and field named, siblings, search, and the
choice between the file and HQ's downlinked catalogue."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract import catalog as catalogue
from contract.catalog import CatalogError
from kiosk.catalog import choose, load
from sync.downlink import DownlinkStore

SHIRT_M = "04012345010015"  # LS-100, blau, M in the sample


@pytest.fixture(scope="module")
def sample() -> catalogue.Catalog:
    return catalogue.read_file(catalogue.sample_path(), "sample")


def sample_document() -> dict[str, Any]:
    return json.loads(catalogue.sample_path().read_text(encoding="utf-8"))


def test_sample_catalogue_is_complete(sample: catalogue.Catalog) -> None:
    assert 60 <= len(sample.products) <= 100
    assert len({p.style for p in sample.products}) == 8
    assert sample.currency == "EUR"
    for product in sample.products:
        assert product.gtin.startswith("04012345") and catalogue.valid_gtin(product.gtin)
        assert product.name["de"] != product.name["en"]
        assert (catalogue.sample_path().parent / product.image).read_text().startswith("<svg")


def test_lookup_and_names(sample: catalogue.Catalog) -> None:
    shirt = sample.get(SHIRT_M)
    assert shirt is not None
    assert (shirt.style, shirt.colour, shirt.size, str(shirt.price)) == ("LS-100", "blau", "M", "49.95")
    assert shirt.as_json("en")["name"] == "Linen shirt"
    assert shirt.as_json("de")["name"] == "Leinenhemd"
    assert sample.get("04012345999999") is None


def test_siblings_are_same_style_in_stock(sample: catalogue.Catalog) -> None:
    siblings = sample.siblings(SHIRT_M)
    assert siblings and all(s.style == "LS-100" and s.stock > 0 and s.gtin != SHIRT_M for s in siblings)
    in_stock = {p.gtin for p in sample.products if p.style == "LS-100" and p.stock > 0} - {SHIRT_M}
    assert {s.gtin for s in siblings} == in_stock
    assert {s.colour for s in siblings} > {"blau"}  # other colours too
    assert sample.siblings("04012345999999") == []


def test_variant_and_tag_mapping(sample: catalogue.Catalog) -> None:
    assert sample.variant("LS-100", "BLAU", "l").size == "L"
    assert sample.variant("LS-100", "lila", "L") is None
    assert sample.gtin_for_tag("62e3086c00") == SHIRT_M
    assert sample.gtin_for_tag("FFFFFFFFFF") is None


def test_search_matches_every_word_in_any_language(sample: catalogue.Catalog) -> None:
    assert {p.style for p in sample.search("linen")} == {"LS-100"}
    assert {p.style for p in sample.search("Hemd blau")} == {"LS-100"}
    assert {p.colour for p in sample.search("hemd blau")} == {"blau"}
    assert sample.search("   ") == []
    assert sample.search("zzz") == []
    assert len(sample.search("flussblau", limit=3)) == 3


BAD_ROWS = [
    ("gtin", "04012345010016", "products[0].gtin"),  # wrong check digit
    ("gtin", 4012345010015, "products[0].gtin"),
    ("price", "49,95", "products[0].price"),
    ("price", 49.95, "products[0].price"),
    ("stock", -1, "products[0].stock"),
    ("stock", True, "products[0].stock"),
    ("name", {"de": ""}, "products[0].name"),
    ("name", 7, "products[0].name"),
    ("style", "", "products[0].style"),
    ("image", "../../etc/passwd", "products[0].image"),
    ("tags", ["62e3086c00"], "products[0].tags"),
]


@pytest.mark.parametrize(("field", "value", "named"), BAD_ROWS)
def test_a_bad_field_is_named(field: str, value: Any, named: str) -> None:
    document = sample_document()
    document["products"][0][field] = value
    with pytest.raises(CatalogError, match=named.replace("[", r"\[").replace("]", r"\]")):
        catalogue.parse(document, origin="test", image_root=None)


def test_missing_field_duplicate_gtin_and_bad_header_are_named() -> None:
    document = sample_document()
    del document["products"][3]["brand"]
    with pytest.raises(CatalogError, match=r"products\[3\]\.brand"):
        catalogue.parse(document, origin="test", image_root=None)
    document = sample_document()
    document["products"][5]["gtin"] = document["products"][4]["gtin"]
    with pytest.raises(CatalogError, match=r"products\[5\]\.gtin: .* twice"):
        catalogue.parse(document, origin="test", image_root=None)
    for header, value in (("version", None), ("currency", "euro"), ("products", [])):
        document = sample_document()
        document[header] = value
        with pytest.raises(CatalogError, match=header):
            catalogue.parse(document, origin="test", image_root=None)


def test_a_name_in_one_language_fills_the_other() -> None:
    document = sample_document()
    document["products"][0]["name"] = {"en": "Shirt"}
    parsed = catalogue.parse(document, origin="test", image_root=None)
    assert parsed.products[0].name == {"de": "Shirt", "en": "Shirt"}


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot be read"):
        catalogue.read_file(tmp_path / "missing.json", "x")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid JSON"):
        catalogue.read_file(broken, "x")


def with_version(version: str, **change: Any) -> dict[str, Any]:
    document = sample_document()
    document["version"] = version
    document["products"][0].update(change)
    return document


def test_newer_downlink_wins_older_or_bad_one_never_replaces(sample: catalogue.Catalog) -> None:
    newer = choose(sample, with_version("2026-11-24T08:00:00Z", price="39.95"))
    assert newer.origin == "downlink" and str(newer.products[0].price) == "39.95"
    assert choose(sample, with_version("2026-11-01T00:00:00Z")) is sample
    bad = with_version("2026-11-25T00:00:00Z", price="cheap")
    assert choose(sample, bad) is sample
    # a bad newer downlink does not displace the good downlinked catalogue already shown
    assert choose(sample, bad, current=newer) is newer
    assert choose(sample, None) is sample


def test_load_prefers_the_real_downlink_store(tmp_path: Path) -> None:
    edge_db = str(tmp_path / "edge.db")
    assert load("", edge_db).origin == "sample"
    store = DownlinkStore(edge_db)
    try:
        store.apply("catalog", json.dumps(with_version("2026-12-01T00:00:00Z")).encode())
    finally:
        store.close()
    loaded = load("", edge_db)
    assert (loaded.origin, loaded.version) == ("downlink", "2026-12-01T00:00:00Z")
    assert loaded.image_root == catalogue.sample_path().parent


def test_load_a_file_and_keep_the_current_catalogue_when_it_turns_bad(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(with_version("2026-11-23T11:00:00Z")), encoding="utf-8")
    edge_db = str(tmp_path / "edge.db")
    good = load(str(path), edge_db)
    assert good.origin == str(path) and good.image_root == tmp_path
    path.write_text(json.dumps(with_version("2026-11-23T12:00:00Z", gtin="1")), encoding="utf-8")
    assert load(str(path), edge_db, current=good) is good
    with pytest.raises(CatalogError, match=r"products\[0\]\.gtin"):
        load(str(path), edge_db)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


BASE = sample_document()


@given(JSON)
def test_any_json_is_accepted_or_rejected_with_catalog_error(document: Any) -> None:
    with contextlib.suppress(CatalogError):
        catalogue.parse(document, origin="fuzz", image_root=None)


@given(st.sampled_from(["gtin", "style", "name", "brand", "colour", "size", "price", "image", "stock", "tags"]), JSON)
def test_any_value_in_any_field_is_accepted_or_named(field: str, value: Any) -> None:
    document = copy.deepcopy(BASE)
    document["products"][1][field] = value
    try:
        catalogue.parse(document, origin="fuzz", image_root=None)
    except CatalogError as error:
        assert f"products[1].{field}" in str(error)


def test_the_sample_is_what_its_generator_makes() -> None:
    """contract/sample/generate.py is the source of the sample: data and images must not drift from it."""
    from contract.sample import generate

    catalog_text, images = generate.build()
    folder = catalogue.sample_path().parent
    assert catalogue.sample_path().read_text(encoding="utf-8") == catalog_text
    assert {f"images/{p.name}" for p in (folder / "images").iterdir()} == set(images)
    for relative, text in images.items():
        assert (folder / relative).read_text(encoding="utf-8") == text
