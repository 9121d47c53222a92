"""The running edge device: tag reads become presence, presence, loyalty codes and screen actions
become sessions and outbox events, and every change is published to the screens' event stream.

One lock orders everything (reader thread, ticker thread, web threads), so events enter the
outbox in the order they happened. Only arrivals and departures are recorded, never raw reads.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import current_app

from common import systemd
from common.config import EdgeConfig
from common.errors import TouchpointError
from contract.catalog import LANGUAGES, Catalog, Product
from contract.envelope import FEEDBACK_SCALES, IDENTIFY_METHODS, VIA, utc_now_iso
from contract.values import text_objection
from drivers.presence import PresenceChange, PresenceTracker
from drivers.readers import TagReader, open_reader
from drivers.types import TagRead
from drivers.zones import Hysteresis, ZoneRules
from kiosk import catalog as catalogue
from kiosk.sessions import Session, SessionChange, Sessions
from kiosk.size_requests import RequestQueue, SizeRequest
from kiosk.stream import Hub
from sync.outbox import Outbox

if TYPE_CHECKING:
    from drivers.camera import CameraReader

log = logging.getLogger(__name__)

TICK_S = 0.2
CATALOG_REFRESH_S = 30.0
CUSTOMER_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{8,128}")
MAX_HANDOFF_GTINS = 20


class ActionError(TouchpointError, ValueError):
    """A screen asked for something invalid; ``field`` names the culprit (HTTP 400)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class NoSession(TouchpointError, LookupError):
    """The action needs a shopper session and none runs (HTTP 409)."""


@dataclass(frozen=True)
class Handoff:
    token: str
    url: str
    gtins: tuple[str, ...]


EXTENSION = "touchpoint.edge"  # key of the running Edge in app.extensions


def current_edge() -> Edge:
    """The Edge of the app handling this request."""
    edge: Edge = current_app.extensions[EXTENSION]
    return edge


def rfc3339(epoch: float) -> str:
    return utc_now_iso(datetime.fromtimestamp(epoch, UTC))


class Edge:
    """Presence, sessions, the size-request queue and event recording for one device."""

    def __init__(
        self,
        config: EdgeConfig,
        outbox: Outbox,
        catalog: Catalog,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.catalog = catalog
        self.clock = clock
        self.role = config.device.role
        self.zones = config.zones
        self.zone = self.zones[0]  # the screen at / without ?zone=, and the camera's
        rules = {
            zone: ZoneRules(reader.min_reads, reader.arrival_window_s, reader.departure_s)
            for reader in config.all_readers
            for zone in reader.covered_zones()
        }
        margin = Hysteresis(config.presence.margin_db, config.presence.hold_s)
        self.presence = PresenceTracker(rules=rules, hysteresis=margin)
        idle_s = config.session.cabin_empty_s if self.role == "mirror" else config.session.kiosk_idle_s
        # a session belongs to the shopper at one screen: each zone (cabin) has its own
        self.sessions = {zone: Sessions(self.role, idle_s) for zone in self.zones}
        self.requests = RequestQueue(config.outbox.path)
        self.hub = Hub()
        self.recorded: Counter[str] = Counter()  # events stored, by name, for /metrics
        self.ignored: Counter[str] = Counter()  # reads dropped before presence: "below_floor", "unmapped_port"
        self.readers: list[TagReader] = []
        self.camera: CameraReader | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- reader and ticker -------------------------------------------------------------------

    def start(self) -> None:
        """Start the RFID reader and the camera (when configured) and the departure/timeout ticker."""
        if self.config.camera:
            from drivers.camera import CameraReader  # OpenCV costs ~17 MB: only where a camera is

            self.camera = CameraReader(self.config.camera.source, self.on_loyalty_code, fps=self.config.camera.fps)
            self.camera.start()
        for index, section in enumerate(self.config.all_readers):
            reader = open_reader(
                section.protocol,
                section.url,
                functools.partial(self.on_read, index=index),
                name=",".join(section.covered_zones()),
                baudrate=section.baudrate,
                region=section.region,
            )
            self.readers.append(reader)
            reader.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="edge-ticker", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        """Stop reader and ticker, end open streams; the outbox stays open (its owner closes it)."""
        self._stop.set()
        for reader in self.readers:
            reader.stop()
        if self.camera:
            self.camera.stop()
        if self._ticker:
            self._ticker.join(5)
        self.hub.close()
        self.requests.close()

    def _tick_loop(self) -> None:
        """Departures and timeouts at 5 Hz; the systemd watchdog is pinged only while ticks succeed."""
        next_refresh = self.clock() + CATALOG_REFRESH_S
        watchdog_s = systemd.watchdog_interval_s()
        next_ping = 0.0
        while not self._stop.wait(TICK_S):
            now = self.clock()
            try:
                self.tick(now)
                if now >= next_refresh:
                    next_refresh = now + CATALOG_REFRESH_S
                    self.refresh_catalog()
            except Exception:  # a bad tick must not stop departures forever
                log.exception("edge tick failed")
                continue
            if watchdog_s and now >= next_ping:
                systemd.watchdog()
                next_ping = now + watchdog_s

    def refresh_catalog(self) -> None:
        """Pick up a newer catalogue from HQ's downlink; a bad one is logged and ignored."""
        fresh = catalogue.load(self.config.catalog.path, self.config.outbox.path, self.catalog)
        if fresh is not self.catalog and fresh.version != self.catalog.version:
            log.info("catalogue %s (%s) replaces %s", fresh.version, fresh.origin, self.catalog.version)
            self.catalog = fresh
            self.hub.publish("catalog", {"version": fresh.version})

    @property
    def reader(self) -> TagReader | None:
        """The first reader, the one a single-reader device has."""
        return self.readers[0] if self.readers else None

    def on_read(self, read: TagRead, index: int = 0) -> None:
        """Called by reader ``index``'s thread for every read; its port picks the zone, its floor drops weak reads."""
        section = self.config.all_readers[index]
        zone = section.port_zone(read.antenna)
        if zone is None or (read.rssi is not None and read.rssi < section.floor(read.antenna)):
            self.ignored["unmapped_port" if zone is None else "below_floor"] += 1
            return
        now = self.clock()
        with self._lock:
            self._apply(self.presence.read(zone, read.epc, read.rssi, now), now)

    def on_loyalty_code(self, customer: str) -> None:
        """Called by the camera thread for a loyalty QR code held up to the screen."""
        self.identify(customer, "qr")

    def tick(self, now: float) -> None:
        """Departures of tags not read for ``departure_s``, and session timeouts."""
        with self._lock:
            self._apply(self.presence.expire(now), now)
            for zone, sessions in self.sessions.items():
                self._record_sessions(sessions.expire(now), now, zone)

    # -- presence ----------------------------------------------------------------------------

    def _apply(self, changes: list[PresenceChange], now: float) -> None:
        """Departures before arrivals, as the tracker orders them: a moved garment leaves, then arrives."""
        for change in changes:
            if change.kind == "arrived":
                self._arrived(change, now)
            else:
                self._departed(change, now)

    def _gtin(self, change: PresenceChange) -> str | None:
        return change.gtin or self.catalog.gtin_for_tag(change.epc)

    def session_zone(self, zone: str | None) -> str:
        """The zone a screen asked for (None: the first); raises ActionError for one this device lacks."""
        if zone is None:
            return self.zone
        if zone not in self.sessions:
            raise ActionError("zone", f"{zone!r} is not one of {', '.join(self.zones)}")
        return zone

    def _arrived(self, change: PresenceChange, now: float) -> None:
        sessions = self.sessions.get(change.zone)
        if sessions is None:  # a zone no reader of this config covers: nothing to attribute it to
            return
        started = sessions.arrived(now)
        session = sessions.current()
        gtin = self._gtin(change)
        items = [_session_item(c) for c in started]
        items.append(("tag.arrived", {"zone": change.zone, "epc": change.epc, "gtin": gtin, "rssi": change.rssi}))
        product = self.catalog.get(gtin) if gtin else None
        if product:
            items.append(("product.viewed", {"gtin": gtin, "via": "tag"}))
        self._record(items, session, now)
        self._publish_sessions(started, change.zone)
        self.hub.publish(
            "tag",
            {
                "kind": "arrived",
                "zone": change.zone,
                "epc": change.epc,
                "gtin": gtin,
                "rssi": change.rssi,
                "since": rfc3339(change.since),
                # everything a card shows, so the mirror needs no lookup; the screen picks the name's language
                "product": {**self.catalog.row_json(product, LANGUAGES[0]), "name": dict(product.name)}
                if product
                else None,
            },
        )

    def _departed(self, change: PresenceChange, now: float) -> None:
        gtin = self._gtin(change)
        data = {"zone": change.zone, "epc": change.epc, "gtin": gtin, "rssi": change.rssi, "dwell_ms": change.dwell_ms}
        sessions = self.sessions[change.zone]
        self._record([("tag.departed", data)], sessions.current(), now)
        if not self.presence.present().get(change.zone):
            sessions.emptied(now)
        self.hub.publish("tag", {"kind": "departed", **data})

    def presence_json(self) -> dict[str, Any]:
        """``GET /api/presence`` exactly as docs/architecture.md fixes it."""
        with self._lock:
            zones = self.presence.present()
        return {
            "zones": {
                zone: [
                    {
                        "epc": t.epc,
                        "gtin": t.gtin or self.catalog.gtin_for_tag(t.epc),
                        "rssi": t.rssi,
                        "since": rfc3339(t.since),
                    }
                    for t in tags
                ]
                for zone, tags in zones.items()
            }
        }

    # -- recording ---------------------------------------------------------------------------

    def _record(self, items: list[tuple[str, dict[str, Any]]], session: Session | None, now: float) -> None:
        """Store events in one transaction, each tagged with the session (and customer) it belongs to."""
        if not items:
            return
        for _, data in items:
            if session is not None:
                data.setdefault("session_id", session.session_id)
                if session.customer:
                    data.setdefault("customer", session.customer)
        stored = self.outbox.append_many(items, at=datetime.fromtimestamp(now, UTC))
        self.recorded.update(name for name, _ in items[: len(stored)])

    def _record_sessions(self, changes: list[SessionChange], now: float, zone: str) -> None:
        for change in changes:
            self._record([_session_item(change)], change.session, now)
        self._publish_sessions(changes, zone)

    def _publish_sessions(self, changes: list[SessionChange], zone: str) -> None:
        """On the stream, with the zone, so each cabin's screen follows its own shopper only."""
        for change in changes:
            self.hub.publish(
                "session",
                {"kind": change.kind, "session_id": change.session.session_id, "reason": change.reason, "zone": zone},
            )

    # -- screen actions ----------------------------------------------------------------------

    def touch(self, zone: str | None = None) -> Session:
        """The shopper touched the screen of ``zone``: the running session, or a new one."""
        now = self.clock()
        zone = self.session_zone(zone)
        sessions = self.sessions[zone]
        with self._lock:
            self._record_sessions(sessions.touch(now), now, zone)
            session = sessions.current()
            assert session is not None
            return session

    def current_session(self, zone: str | None = None) -> Session | None:
        with self._lock:
            return self.sessions[self.session_zone(zone)].current()

    def end_session(self, reason: str = "shopper", zone: str | None = None) -> Session | None:
        """End the running session of ``zone``'s screen; returns it, or None when none ran."""
        now = self.clock()
        zone = self.session_zone(zone)
        sessions = self.sessions[zone]
        with self._lock:
            changes = sessions.end(now, reason)
            self._record_sessions(changes, now, zone)
            return changes[0].session if changes else None

    def product(self, gtin: str) -> Product:
        """Raises ActionError for an unknown GTIN."""
        found = self.catalog.get(gtin)
        if found is None:
            raise ActionError("gtin", f"{gtin!r} is not in the catalogue")
        return found

    def view_product(self, gtin: str, via: str, zone: str | None = None) -> Product:
        """The shopper opened a product: a touch plus ``product.viewed``."""
        if via not in VIA:
            raise ActionError("via", f"{via!r} is not one of {', '.join(sorted(VIA))}")
        product = self.product(gtin)
        with self._lock:  # re-entrant: the touch and its event are one step for the ticker
            session = self.touch(zone)
            self._record([("product.viewed", {"gtin": gtin, "via": via})], session, self.clock())
        return product

    def request_size(self, gtin: str, size: str | None, colour: str | None, zone: str | None = None) -> SizeRequest:
        """Ask staff for ``gtin``'s style in another size and/or colour, brought to ``zone``."""
        have = self.product(gtin)
        if not size and not colour:
            raise ActionError("size", "give a size, a colour or both")
        want = self.catalog.variant(have.style, colour or have.colour, size or have.size)
        if want is None:
            raise ActionError("size", f"{have.style} has no {size or have.size} in {colour or have.colour}")
        zone = self.session_zone(zone)
        with self._lock:
            session = self.touch(zone)
            now = self.clock()
            request = self.requests.create(
                session_id=session.session_id,
                zone=zone,
                gtin=gtin,
                requested_gtin=want.gtin,
                size=want.size,
                colour=want.colour,
                now=now,
            )
            self._record([("size.requested", _request_data(request))], session, now)
            self.hub.publish("request", request.as_json())
        return request

    def move_request(self, request_id: str, action: str) -> SizeRequest:
        """Staff act on a request; ``brought`` records ``size.fulfilled``."""
        now = self.clock()
        with self._lock:
            request = self.requests.move(request_id, action, now)
            if action == "brought":
                session = Session(request.session_id, request.created)
                self._record([("size.fulfilled", _request_data(request))], session, now)
            self.hub.publish("request", request.as_json())
        return request

    def submit_feedback(self, scale: str, score: Any, touchpoint: str | None, zone: str | None = None) -> Session:
        """Record the end-of-session survey answer for the session it rates."""
        if scale not in FEEDBACK_SCALES:
            raise ActionError("scale", f"{scale!r} is not nps or csat")
        if not isinstance(score, int) or isinstance(score, bool) or score not in FEEDBACK_SCALES[scale]:
            allowed = FEEDBACK_SCALES[scale]
            raise ActionError("score", f"{score!r} is not a whole number from {allowed[0]} to {allowed[-1]}")
        if touchpoint is not None and (why := text_objection(touchpoint)):  # HQ would dead-letter the event
            raise ActionError("touchpoint", why)
        now = self.clock()
        sessions = self.sessions[self.session_zone(zone)]
        with self._lock:
            session = sessions.to_rate(now)
            if session is None:
                raise NoSession("no session to rate: feedback follows a session")
            data = {"touchpoint": touchpoint or self.role, "scale": scale, "score": score}
            self._record([("feedback.submitted", data)], session, now)
        return session

    def create_handoff(self, gtins: object, base_url: str, zone: str | None = None) -> Handoff:
        """A token the phone opens to continue the session; records ``handoff.created``."""
        if not isinstance(gtins, list) or not gtins or len(gtins) > MAX_HANDOFF_GTINS:
            raise ActionError("gtins", f"must be a list of 1 to {MAX_HANDOFF_GTINS} GTINs")
        for gtin in gtins:
            if not isinstance(gtin, str):  # a number would reach HQ as a number, which it refuses
                raise ActionError("gtins", 'GTINs are strings of digits, e.g. "04012345010015"')
            self.product(gtin)
        token = secrets.token_urlsafe(16)
        handoff = Handoff(token, base_url + token, tuple(gtins))
        with self._lock:
            session = self.touch(zone)
            data = {"token": handoff.token, "gtins": list(handoff.gtins)}
            self._record([("handoff.created", data)], session, self.clock())
        return handoff

    def identify(self, customer: Any, method: str, zone: str | None = None) -> Session:
        """Link the session of ``zone``'s screen to a pseudonymous customer token (never a name or
        e-mail address); the camera's codes go to the first zone."""
        if method not in IDENTIFY_METHODS:
            raise ActionError("method", f"{method!r} is not one of {', '.join(sorted(IDENTIFY_METHODS))}")
        if not isinstance(customer, str) or not CUSTOMER_TOKEN.fullmatch(customer):
            raise ActionError("customer", "must be a pseudonymous token of 8 to 128 letters, digits, _ . : -")
        zone = self.session_zone(zone)
        sessions = self.sessions[zone]
        with self._lock:
            session = self.touch(zone)
            if session.customer not in (None, customer):  # another customer: another shopper
                now = self.clock()
                self._record_sessions(sessions.end(now, "new-customer"), now, zone)
                session = self.touch(zone)
            if session.customer != customer:  # the same code seen again records nothing new
                session = sessions.identify(customer) or session
                self._record([("customer.identified", {"method": method})], session, self.clock())
                # the stream is shared with staff screens: it says who changed, never the token
                identified = {"kind": "identified", "session_id": session.session_id, "reason": method, "zone": zone}
                self.hub.publish("session", identified)
        return session


def _session_item(change: SessionChange) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {"session_id": change.session.session_id}
    if change.kind == "ended":
        data.update(duration_ms=change.duration_ms, reason=change.reason)
    return f"session.{change.kind}", data


def _request_data(request: SizeRequest) -> dict[str, Any]:
    return {
        "request_id": request.id,
        "gtin": request.gtin,
        "requested_gtin": request.requested_gtin,
        "size": request.size,
        "colour": request.colour,
        "zone": request.zone,
    }
