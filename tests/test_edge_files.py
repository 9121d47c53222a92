"""The edge serves only the images its catalogue names (issue 13): a real ``touchpoint edge`` with the
catalogue, the outbox (with its WAL) and edge.toml in one folder, as in /etc/touchpoint, asked over
raw HTTP, so no client tidies a path before the server sees it."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.catalog import CatalogError, parse, sample_path
from tests.conftest import wait_until
from tests.test_kiosk_server import write_config
from touchpoint.services import free_port

TOUCHPOINT = str(Path(sys.executable).parent / "touchpoint")


def get(port: int, path: str) -> tuple[int, bytes, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read(), response
    finally:
        connection.close()


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``touchpoint edge`` serving a copy of the sample catalogue from the folder of its outbox and config."""
    shutil.copy(sample_path(), tmp_path / "catalog.json")
    shutil.copytree(sample_path().parent / "images", tmp_path / "images")
    (tmp_path / "images" / "not-in-the-catalogue.svg").write_text("<svg/>", encoding="utf-8")
    port = free_port()
    config = write_config(tmp_path, port, catalog=str(tmp_path / "catalog.json"))
    with (tmp_path / "edge.log").open("wb") as log:
        process = subprocess.Popen([TOUCHPOINT, "edge", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: _answers(port), timeout=30), (tmp_path / "edge.log").read_text()
        yield port, tmp_path
    finally:
        process.terminate()
        process.wait(30)


def final_status(port: int, path: str) -> int:
    """The status at the end of the server's redirects (Werkzeug merges double slashes with a 308)."""
    for _ in range(3):
        status, _, response = get(port, path)
        location = response.getheader("Location", "")
        if status not in (301, 308) or not location.startswith(("/", "http://127.0.0.1")):
            return status
        path = "/" + location.split("/", 3)[-1] if location.startswith("http") else location
    return status


def _answers(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def test_named_images_are_served_and_nothing_else(edge: tuple[int, Path]) -> None:
    port, folder = edge
    named = json.loads((folder / "catalog.json").read_text())["products"][0]["image"]
    status, body, response = get(port, f"/catalog/{named}")
    assert status == 200 and body == (folder / named).read_bytes()
    assert response.getheader("Content-Security-Policy", "").startswith("default-src 'none'")
    assert {"edge.db", "edge.db-wal", "edge.db-shm", "edge.toml"} <= {p.name for p in folder.iterdir()}
    refused = [
        "/catalog/edge.db",
        "/catalog/edge.db-wal",
        "/catalog/edge.db-shm",
        "/catalog/edge.toml",
        "/catalog/catalog.json",
        "/catalog/edge.log",
        "/catalog/images/not-in-the-catalogue.svg",
        "/catalog/images",
        "/catalog/../edge.toml",
        "/catalog/%2e%2e/edge.toml",
        "/catalog/images/../edge.db",
        "/catalog/images%2f..%2fedge.db",
        f"/catalog/./{named}",
        f"/catalog//{folder}/edge.db",
        "/catalog/%2Fetc%2Fpasswd",
        "/static/../edge.toml",
        "/static/%2e%2e/%2e%2e/common/config.py",
        "/edge.db",
    ]
    answers = {path: final_status(port, path) for path in refused}
    assert answers == dict.fromkeys(refused, 404)


def test_a_catalogue_row_may_name_only_an_image_file() -> None:
    document = json.loads(sample_path().read_text())
    for image in ("edge.db", "edge.toml", "images/x.svg.db", "../edge.png", "/etc/x.png"):
        row = {**document["products"][0], "image": image}
        with pytest.raises(CatalogError, match=r"products\[0\]\.image"):
            parse({**document, "products": [row]}, origin="test", image_root=None)
