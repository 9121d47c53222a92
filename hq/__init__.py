"""Touchpoint HQ: MQTT ingestor, storage (SQLite or PostgreSQL), API and health."""

from __future__ import annotations

from hq.app import create_app
from hq.storage import Storage, open_storage

__all__ = ["Storage", "create_app", "open_storage"]
