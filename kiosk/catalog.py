"""Which catalogue an edge shows: HQ's downlinked one when it is newer than the file, else the
configured file, else the bundled sample (the format itself is ``contract.catalog``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from contract.catalog import Catalog, CatalogError, parse, read_file, sample_path
from sync.downlink import DownlinkStore, newer

log = logging.getLogger(__name__)


def downlinked(edge_db: str, kind: str = "catalog") -> Any:
    """HQ's retained ``kind`` document as the sync agent stored it in the edge's SQLite file, or None."""
    store = DownlinkStore(edge_db)
    try:
        return store.get(kind)
    finally:
        store.close()


def choose(base: Catalog, document: Any, current: Catalog | None = None) -> Catalog:
    """The catalogue to show, given the file's ``base`` and HQ's downlinked ``document``.

    A valid downlink newer than the file wins; a bad one is logged and ignored, so it never
    replaces a good catalogue (the ``current`` downlinked one stays while it is newer).
    """
    candidates = [base]
    if current is not None and current.origin == "downlink":
        candidates.append(current)
    if document is not None:
        try:
            candidates.append(parse(document, origin="downlink", image_root=base.image_root))
        except CatalogError as error:
            log.error("downlinked catalogue rejected: %s", error)
    best = base
    for candidate in candidates[1:]:
        if newer(candidate.version, best.version):
            best = candidate
    return best


def load(catalog_path: str, edge_db: str, current: Catalog | None = None) -> Catalog:
    """The catalogue to show: a newer valid downlink, else the file (or the sample when empty).

    Raises CatalogError for a bad file, unless a ``current`` catalogue is there to keep.
    """
    file_path = Path(catalog_path) if catalog_path else sample_path()
    try:
        base = read_file(file_path, str(file_path) if catalog_path else "sample")
    except CatalogError:
        if current is None:
            raise
        log.exception("catalogue file rejected, keeping version %s", current.version)
        base = current
    return choose(base, downlinked(edge_db), current)
