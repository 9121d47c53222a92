"""Downlink: validated, versioned, replaced in one transaction; and the sync_state reader."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.catalog import sample_path
from sync import state
from sync.downlink import DownlinkError, DownlinkStore, newer


def catalog(version: int) -> bytes:
    """The sample catalogue at ``version``, every row's stock set to the version number."""
    document: dict[str, Any] = json.loads(sample_path().read_text())
    document["version"] = str(version)
    for product in document["products"]:
        product["stock"] = version
    return json.dumps(document).encode()


@pytest.fixture
def store(tmp_path: Path) -> Any:
    downlink = DownlinkStore(tmp_path / "edge.db")
    yield downlink
    downlink.close()


def test_newer_versions_replace_older_and_equal_ones_never(store: DownlinkStore) -> None:
    assert store.get("config") is None and store.version("config") is None
    assert store.apply("config", b'{"version": "9", "volume": 3}')
    assert store.apply("config", b'{"version": "10", "volume": 4}')  # numbers, not strings
    assert not store.apply("config", b'{"version": "9", "volume": 5}')
    assert not store.apply("config", b'{"version": "10", "volume": 6}')
    assert store.get("config") == {"version": "10", "volume": 4}


def test_kinds_are_independent(store: DownlinkStore) -> None:
    assert store.apply("recommendations", b'{"version": "a", "items": {}}')
    assert store.apply("catalog", catalog(1))
    assert store.version("recommendations") == "a" and store.version("catalog") == "1"


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        ("config", b"not json", "not JSON"),
        ("config", b"[1]", "JSON object"),
        ("config", b'{"volume": 1}', "'version'"),
        ("config", b'{"version": 7}', "'version'"),
        ("catalog", b'{"version": "2", "products": "none"}', "products"),
        ("catalog", b'{"version": "2", "products": [{"gtin": "123"}]}', "gtin"),
        ("weather", b'{"version": "1"}', "unknown kind"),
    ],
)
def test_malformed_messages_raise_and_change_nothing(
    store: DownlinkStore, kind: str, payload: bytes, reason: str
) -> None:
    assert store.apply("catalog", catalog(1))
    with pytest.raises(DownlinkError, match=reason):
        store.apply(kind, payload)
    assert store.version("catalog") == "1" and store.version("config") is None


def test_a_reader_never_sees_half_a_catalogue(tmp_path: Path, store: DownlinkStore) -> None:
    """The kiosk reads through its own connection while the agent replaces the catalogue."""
    payloads = [catalog(v) for v in range(1, 41)]
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        reader = DownlinkStore(tmp_path / "edge.db")
        try:
            while not done.is_set():
                document = reader.get("catalog")
                if document is not None:
                    stocks = {p["stock"] for p in document["products"]}
                    assert stocks == {int(document["version"])}, "rows from two versions"
                    seen.append(int(document["version"]))
        finally:
            reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    for payload in payloads:
        store.apply("catalog", payload)
    done.set()
    thread.join()
    assert seen == sorted(seen)  # never back to an older version
    assert store.version("catalog") == "40"


def test_newer_compares_numbers_times_and_strings() -> None:
    assert newer("10", "9") and not newer("9", "10")
    assert newer("2026-11-23T09:30:00Z", "2026-11-23T10:00:00+01:00")
    assert newer("b", "a") and not newer("a", "a")


@given(st.binary(max_size=300), st.sampled_from(["catalog", "recommendations", "config"]))
def test_any_bytes_are_applied_or_refused_with_our_error(payload: bytes, kind: str) -> None:
    downlink = DownlinkStore(":memory:")
    try:
        downlink.apply(kind, payload)
    except DownlinkError:
        assert downlink.version(kind) is None
    finally:
        downlink.close()


@given(st.text(max_size=20), st.text(max_size=20))
def test_newer_is_a_strict_order(a: str, b: str) -> None:
    assert not (newer(a, b) and newer(b, a))
    assert not newer(a, a)


def test_sync_state_reader(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    assert state.read(path) is None  # no file
    table = state.StateTable(path)
    try:
        assert state.read(path) is None  # no row yet
        written = state.SyncState("connected", 41, 1.5, 2.5, "", None, 3.0)
        table.write(written)
        table.write(written)  # one row, replaced
    finally:
        table.close()
    assert state.read(path) == written and written.connected
