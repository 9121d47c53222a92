"""Helpers for the Segment API and OpenAPI tests: ``touchpoint hq`` as a real process, its tokens."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.acknowledger import ACK_SECRET
from tests.faults import Service
from tests.hq_web_support import API_TOKEN, POS_TOKEN, USERS, WEB_TOKEN
from touchpoint.services import free_port, wait_for_port

APP_TOKEN = "app-token-0123456789"
TOKENS = {"web": WEB_TOKEN, "app": APP_TOKEN, "pos": POS_TOKEN}


@dataclass(frozen=True)
class RunningHq:
    """A ``touchpoint hq`` process: its base URL and the config it runs with."""

    url: str
    config: Path
    service: Service

    def get(self, path: str) -> Any:
        """GET a JSON document with the API token."""
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {API_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def journey(self, customer: str) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/customers/{customer}/journey?limit=500")["events"])


def toml(document: dict[str, Any]) -> str:
    """A config file: tables of scalars, one level of sub-tables (``[hq.tokens]``)."""
    lines: list[str] = []
    for name, table in document.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for sub, values in ((k, v) for k, v in table.items() if isinstance(v, dict)):
            lines.append(f"[{name}.{sub}]")
            lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


@contextmanager
def hq_process(tmp_path: Path, mqtt_url: str | None = None, **hq: Any) -> Iterator[RunningHq]:
    """``touchpoint hq`` over SQLite: ``--role all`` with a broker, else ``--role web``; stopped afterwards."""
    port = free_port()
    document: dict[str, Any] = {
        "web": {"listen": f"127.0.0.1:{port}"},
        "database": {"url": f"sqlite:///{tmp_path}/hq.db"},
        "hq": {
            "api_token": API_TOKEN,
            "secret_key": "test-secret",
            "ack_secret": ACK_SECRET,
            "recompute_interval_s": 0,
            **hq,
        },
        "log": {"format": "json"},
    }
    document["hq"]["tokens"] = TOKENS
    document["hq"]["users"] = USERS
    if mqtt_url is not None:
        document["mqtt"] = {"url": mqtt_url}
        document["hq"]["share_group"] = ""
    config = tmp_path / "hq.toml"
    config.write_text(toml(document), encoding="utf-8")
    role = "all" if mqtt_url is not None else "web"
    service = Service(["hq", "--config", str(config), "--role", role], tmp_path / "hq.log").start()
    try:
        wait_for_port(port, 30)
        yield RunningHq(f"http://127.0.0.1:{port}", config, service)
    finally:
        code = service.stop()
        assert code == 0, service.log_tail()
