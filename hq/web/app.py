"""``hq.create_app``: the HQ web app factory (API and health), flaskr-style.

Defaults first, then the deployment's ``HqConfig``, then a test override; the storage and the
metrics registry live in ``app.extensions`` so views stay thin and tests pass their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask

from common.config import HqConfig
from hq.prometheus import HqMetrics
from hq.storage import Storage, open_storage

STORAGE = "hq.storage"
METRICS = "hq.metrics"
CHECKS = "hq.checks"  # name -> callable returning whether that part is healthy


def create_app(
    config: HqConfig,
    storage: Storage | None = None,
    *,
    metrics: HqMetrics | None = None,
    checks: Mapping[str, Callable[[], bool]] | None = None,
    test_config: Mapping[str, Any] | None = None,
) -> Flask:
    """Build the app; opens ``[database] url`` unless ``storage`` is given (the caller closes it)."""
    from hq.web import customers_api as customers
    from hq.web import dashboard, events_api, health, openapi, reports, segment_api
    from hq.web import fleet_api as api

    app = Flask("hq")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # rows keep docs/architecture.md's field order
    app.config.from_mapping(HQ_DEAD_LETTER_LIMIT=1000)
    app.config["HQ"] = config
    if test_config:
        app.config.from_mapping(test_config)
    storage = storage if storage is not None else open_storage(config.database.url)
    metrics = metrics or HqMetrics()
    metrics.watch(storage)
    app.extensions[STORAGE] = storage
    app.extensions[METRICS] = metrics
    app.extensions[CHECKS] = dict(checks or {})
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(events_api.bp)
    app.register_blueprint(segment_api.bp)
    app.register_blueprint(openapi.bp)
    reports.init_app(app, storage, metrics)
    app.register_blueprint(customers.bp)
    dashboard.init_app(app)
    return app
