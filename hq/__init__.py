"""Touchpoint HQ: ``core`` (pure), ``storage`` (all SQL), ``analytics``, ``mqtt`` and ``web``;
``server`` runs them as ``touchpoint hq``."""

from __future__ import annotations

from hq.storage import Storage, open_storage
from hq.web.app import create_app

__all__ = ["Storage", "create_app", "open_storage"]
