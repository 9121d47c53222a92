"""The databases ``bench_scale`` measures: N generated events, loaded through HQ's own ingest, kept.

Events come from the test generator (``tests/hq_dataset.py``) in chunks of up to 3,000 shoppers,
one seed per chunk, with trips over 84 days shifted to end an hour before the build (about 90
days with the browsing before and the purchases after; events past that end are dropped). Each
chunk's customer tokens and anonymous ids get the chunk's suffix, so chunks are other people, and
each device's seq runs on from one chunk to the next. The first chunk also holds
``bench_journey``'s heavy customer (1,000 events) and a late visitor: an anonymous id with product
pages in the last days that nothing links, for the late identity link the benchmark posts.

They reach HQ as they would in production, so whatever upkeep HQ does at ingest runs: edge events
in batches of 500 through a real Mosquitto to ``touchpoint hq --role ingest`` (acks awaited per
chunk), digital ones (web, app, POS) in batches of 500 to ``POST /v1/events`` of a ``touchpoint hq
--role web``, both at once. A built database is kept under ``var/bench/`` by backend, size and a
fingerprint of the generator, the code here that shapes the events and the schema HQ creates, so a
rerun skips the load; each measurement runs on a copy of it (``run_copy``), so the kept one never
changes. Delete ``var/bench/`` to free the disk (about 0.8 GB per million events on SQLite, more on PostgreSQL).
"""

from __future__ import annotations

import hashlib
import http.client
import inspect
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bench import bench_journey
from bench.bench_hq import PROBE, until_acked
from common.config import MqttSection
from contract.envelope import make_event
from contract.topics import DeviceTopics
from hq.storage import open_storage
from tests import hq_dataset
from tests.acknowledger import ACK_SECRET
from touchpoint.services import Mosquitto, PostgresCluster, ServiceError, free_port, wait_for_port

CACHE = Path(__file__).resolve().parent.parent / "var" / "bench"
TOUCHPOINT = str(Path(sys.executable).parent / "touchpoint")
CHUNK_CUSTOMERS = 3000  # about 93,000 events a chunk: one chunk in memory at a time
DAYS = 84
BATCH = 500  # events per MQTT message and per POST, the defaults of [mqtt] batch_events and the API's cap
API_TOKEN = "bench-api-token"
TOKENS = {"web": "bench-web-token", "app": "bench-app-token", "pos": "bench-pos-token"}
LATE_VISITOR = "bench-late-visitor"
PROBE_STORE = "berlin-01"  # a store the data has anyway, so the probe adds no store to the reports


@dataclass(frozen=True)
class Built:
    """A kept database and what measuring it needs to know."""

    folder: Path
    backend: str
    events: int  # stored events, counted in the database
    end: datetime  # no event is later; report windows end just after
    load_s: float  # how long loading took when it was built
    loaded: datetime  # when loading ended: HQ received every event before
    cached: bool  # built by an earlier run

    @property
    def catalog(self) -> Path:
        return self.folder / "catalog.json"


class Http:
    """One keep-alive connection to an HQ process, as an operator's client or proxy holds."""

    def __init__(self, port: int, token: str = API_TOKEN) -> None:
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)

    def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, decoded JSON body); reconnects once if the server closed the connection."""
        headers = {"Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"}
        payload = None if body is None else json.dumps(body).encode()
        try:
            answer, data = self._send(method, path, payload, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.conn.close()  # the server ended a kept-alive connection: one more try on a new one
            answer, data = self._send(method, path, payload, headers)
        kind = answer.getheader("Content-Type", "")
        document = json.loads(data) if data and kind.startswith("application/json") else None
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, document

    def _send(
        self, method: str, path: str, payload: bytes | None, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        self.conn.request(method, path, payload, headers)
        answer = self.conn.getresponse()
        return answer, answer.read()

    def close(self) -> None:
        self.conn.close()

    def get(self, path: str) -> Any:
        status, _, document = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {document}")
        return document

    def post_events(self, channel: str, events: list[dict[str, Any]]) -> None:
        """POST a batch with the channel's token; every event must be accepted."""
        status, _, document = self.request("POST", "/v1/events", events, TOKENS[channel])
        if status != 200 or len(document["accepted"]) != len(events):
            raise RuntimeError(f"POST /v1/events ({channel}): {status} {str(document)[:300]}")


def write_config(path: Path, url: str, mqtt: MqttSection, port: int, catalog: Path) -> Path:
    """An hq.toml for every process of one run: database, broker, port, tokens, catalogue."""
    tokens = "\n".join(f'{channel} = "{token}"' for channel, token in TOKENS.items())
    path.write_text(
        f'[web]\nlisten = "127.0.0.1:{port}"\n\n[mqtt]\nurl = "{mqtt.url}"\n\n[database]\nurl = "{url}"\n\n'
        f'[hq]\napi_token = "{API_TOKEN}"\nrecompute_interval_s = 0\ncatalog = "{catalog}"\n'
        f'ack_secret = "{ACK_SECRET}"\n\n'
        f'[hq.tokens]\n{tokens}\n\n[log]\nlevel = "warning"\n'
    )
    return path


@contextmanager
def hq_process(role: str, config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``touchpoint hq --role ROLE`` as its own process, stopped with SIGTERM at the end."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [TOUCHPOINT, "hq", "--role", role, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 1800) -> None:
    """Until the process accepts connections on ``port``; raises with its log if it ends first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"touchpoint hq ended ({process.returncode}): {log.read_text()[-1500:]}")
        try:
            wait_for_port(port, 0.5)
            return
        except ServiceError:
            if time.monotonic() > deadline:
                raise


@contextmanager
def broker() -> Iterator[MqttSection]:
    """A Mosquitto of its own: retained acks and statuses of another run must not reach this one."""
    with (
        tempfile.TemporaryDirectory(prefix="tp-bench-scale-mqtt-") as folder,
        Mosquitto(workdir=folder, persistence=False) as running,
    ):
        yield MqttSection(url=running.url)


def fingerprint() -> str:
    """What a kept database depends on: the generator, the code here that shapes and sends the events,
    and the schema HQ creates today (after a change to what ingest does that leaves the schema alone,
    use ``--rebuild``). Not this file as a whole, so that moving an import keeps the databases."""
    digest = hashlib.sha256(f"{CHUNK_CUSTOMERS} {DAYS} {BATCH}".encode())
    digest.update(Path(hq_dataset.__file__).read_bytes())
    for code in (chunk, extras, late_visitor, Loader, load, bench_journey.heavy_customer):
        digest.update(inspect.getsource(code).encode())
    with tempfile.TemporaryDirectory(prefix="tp-bench-schema-") as folder:
        open_storage(f"sqlite:///{folder}/schema.db").close()
        with closing(sqlite3.connect(f"{folder}/schema.db")) as conn:
            rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").fetchall()
    digest.update("\n".join(sql for (sql,) in rows).encode())
    return digest.hexdigest()[:12]


def late_visitor(at: datetime) -> list[dict[str, Any]]:
    """Five product pages of an anonymous visitor whom nothing links to anybody (yet)."""
    return [
        make_event(
            "page.viewed",
            {"anonymous_id": LATE_VISITOR, "page": "product"},
            source="/channels/web",
            time=at + timedelta(minutes=n),
        )
        for n in range(5)
    ]


def chunk(number: int, customers: int, end: datetime) -> list[dict[str, Any]]:
    """One seed's events, shifted to end at ``end``, its people renamed to be this chunk's own."""
    data = hq_dataset.generate(seed=number + 1, customers=customers, days=DAYS)
    shift = end - (data.start + timedelta(days=DAYS))  # the last day's trips are over by about 21:00
    kept = []
    for event in data.events:
        moment = datetime.fromisoformat(event["time"]) + shift
        if moment > end:
            continue
        event["time"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        fields = event["data"]
        for name in ("customer", "anonymous_id"):
            if name in fields and fields[name] != "undefined":  # the shared-tablet trap stays as it is
                fields[name] = f"{fields[name]}.{number}"
        kept.append(event)
    return kept


def extras(end: datetime) -> list[dict[str, Any]]:
    """What the first chunk adds: the heavy customer's 1,000 events and the late visitor's pages."""
    return bench_journey.heavy_customer(end - timedelta(days=60)) + late_visitor(end - timedelta(days=3))


def edge_events(number: int, count: int, end: datetime) -> list[dict[str, Any]]:
    """``count`` edge events of chunk ``number``, in time order (for ingest measurements)."""
    events = [e for e in chunk(number, math.ceil(count / 20) + 20, end) if e["source"].startswith("/stores/")]
    if len(events) < count:
        raise ValueError(f"chunk {number} has {len(events)} edge events, fewer than {count}")
    return events[:count]


class Loader:
    """Sends chunks to HQ as a fleet and the digital channels would; keeps each device's seq."""

    def __init__(self, mqtt: MqttSection, web: Http) -> None:
        self.mqtt = mqtt
        self.web = web
        self.seqs: dict[str, int] = {}

    def subscribed(self) -> bool:
        return any(d["store"] == PROBE_STORE and d["device"] == PROBE for d in self.web.get("/v1/devices"))

    def load(self, events: list[dict[str, Any]]) -> None:
        """Edge events over MQTT and digital ones over HTTP at the same time; returns when all are stored."""
        edge: dict[str, list[dict[str, Any]]] = {}
        digital: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            parts = event["source"].split("/")  # /stores/{store}/devices/{device} or /channels/{channel}/...
            if parts[1] == "stores":
                event["seq"] = self.seqs[event["source"]] = self.seqs.get(event["source"], 0) + 1
                edge.setdefault(event["source"], []).append(event)
            else:
                digital.setdefault(parts[2], []).append(event)
        with ThreadPoolExecutor(max_workers=1) as pool:
            posted = pool.submit(self._post, digital)
            queues, last = [], {}
            for source, made in edge.items():
                _, _, store, _, name = source.split("/")
                device = DeviceTopics(store, name)
                queues.append(
                    [(device.events, json.dumps(made[i : i + BATCH]).encode()) for i in range(0, len(made), BATCH)]
                )
                last[device.ack] = self.seqs[source]
            batches = [item for round_ in zip_longest(*queues) for item in round_ if item]
            if batches:
                until_acked(self.mqtt, PROBE_STORE, batches, last, self.subscribed)
            posted.result()

    def _post(self, digital: dict[str, list[dict[str, Any]]]) -> None:
        with closing(Http(self.web.port)) as own:  # its own connection: this runs on another thread
            for channel, made in digital.items():
                for i in range(0, len(made), BATCH):
                    own.post_events(channel, made[i : i + BATCH])


def ensure(cache: Path, backend: str, events: int, rebuild: bool = False) -> Built:
    """The kept database of ``events`` events on ``backend``, built first if there is none."""
    folder = cache / f"scale-{backend}-{events}-{fingerprint()}"
    if rebuild:
        shutil.rmtree(folder, ignore_errors=True)
    cached = (folder / "meta.json").exists()
    if not cached:
        build(folder, backend, events)
    meta = json.loads((folder / "meta.json").read_text())
    moments = (datetime.fromisoformat(meta["end"]), meta["load_s"], datetime.fromisoformat(meta["built"]))
    return Built(folder, backend, meta["events"], *moments, cached)


@contextmanager
def cluster(folder: Path) -> Iterator[PostgresCluster]:
    """The PostgreSQL cluster kept in ``folder``, running for the block (``with PostgresCluster()``
    would delete it afterwards)."""
    (folder / "postgres").mkdir(exist_ok=True)
    running = PostgresCluster(workdir=folder / "postgres").start()
    try:
        yield running
    finally:
        running.stop()


def url_of(running: PostgresCluster, name: str) -> str:
    return running.url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def run_copy(built: Built, workdir: Path) -> Iterator[str]:
    """A copy of the kept database for one run to change (a late link, ingested events)."""
    if built.backend == "sqlite":
        for suffix in ("", "-wal"):
            if (built.folder / f"bench.db{suffix}").exists():
                shutil.copyfile(built.folder / f"bench.db{suffix}", workdir / f"run.db{suffix}")
        yield f"sqlite:///{workdir}/run.db"
        return
    import psycopg

    with cluster(built.folder) as running, psycopg.connect(running.url, autocommit=True) as admin:
        admin.execute('CREATE DATABASE "run" TEMPLATE "bench"')
        try:
            yield url_of(running, "run")
        finally:
            admin.execute('DROP DATABASE "run" WITH (FORCE)')


@contextmanager
def new_database(folder: Path, backend: str) -> Iterator[str]:
    """An empty database in ``folder`` to build: a SQLite file, or a database of a new kept cluster."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/bench.db"
        return
    with cluster(folder) as running:
        yield running.create_database("bench")


def build(folder: Path, backend: str, events: int) -> None:
    """Generate and load ``events`` events into a new database in ``folder`` (first in a ``.partial``
    folder, so an interrupted build is started again, not kept)."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    (partial / "catalog.json").write_text(json.dumps(hq_dataset.generate(seed=1, customers=1).catalog))
    started = time.perf_counter()
    with new_database(partial, backend) as url, broker() as mqtt:
        port = free_port()
        config = write_config(partial / "load.toml", url, mqtt, port, partial / "catalog.json")
        log = partial / "load.log"
        with hq_process("ingest", config, log), hq_process("web", config, log) as web:
            wait_listening(web, port, log)
            with closing(Http(port)) as http:
                load(Loader(mqtt, http), events, end)
        load_s = time.perf_counter() - started
        with open_storage(url) as storage:
            if backend == "postgres":
                storage.fetchall("ANALYZE")  # what autovacuum does soon after a bulk load
            ((stored,),) = storage.fetchall("SELECT COUNT(*) FROM events")
    meta = {"events": stored, "end": end.isoformat(), "load_s": load_s, "built": datetime.now(timezone.utc).isoformat()}
    (partial / "meta.json").write_text(json.dumps(meta, indent=1))
    partial.rename(folder)


def load(loader: Loader, target: int, end: datetime) -> None:
    """Chunks until about ``target`` events are sent; the last chunk is sized to what is left."""
    sent, per_customer, number, started = 0, 31.0, 0, time.perf_counter()
    while number == 0 or target - sent >= per_customer:
        extra = extras(end) if number == 0 else []
        customers = max(1, min(CHUNK_CUSTOMERS, round((target - sent - len(extra)) / per_customer)))
        made = chunk(number, customers, end)
        per_customer = len(made) / customers
        loader.load(made + extra)
        sent += len(made) + len(extra)
        number += 1
        rate = sent / (time.perf_counter() - started)
        print(f"  loaded {sent:,} of {target:,} events ({rate:,.0f}/s)", file=sys.stderr, flush=True)
