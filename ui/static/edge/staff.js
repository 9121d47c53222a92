// The staff screen: the size/colour request queue with waiting times, live tags per zone, and
// reader, camera and sync health. Live through the event stream; a slow poll catches the rest.
"use strict";
const POLL_S = 10;
let queue = [];
const names = new Map();  // gtin -> product name, from tag events and lookups

function minutes(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

function ticket(r) {
  const actions = (r.state === "open" ? ["claim", "brought", "cancel"] : ["brought", "cancel"]).map((action) => {
    const button = el("button", {type: "button", className: action === "cancel" ? "secondary" : "primary",
      textContent: T["staff." + action], "data-action": action});
    button.addEventListener("click", () => api("POST", `/api/requests/${r.id}/${action}`).then(refreshQueue));
    return button;
  });
  return el("li", {className: `ticket ${r.state}`, "data-request": r.id},
    el("div", {className: "row"}, el("span", {className: "want", textContent: `${colourName(r.colour)} · ${r.size}`}),
      el("span", {className: `badge ${r.state}`, textContent: T["state." + r.state]})),
    el("div", {className: "row"}, el("span", {textContent: r.zone}), el("span", {className: "hint", textContent: names.get(r.requested_gtin) || r.requested_gtin})),
    el("div", {className: "row"}, el("span", {className: "hint", textContent: T["staff.waiting"]}),
      el("strong", {className: "waited", "data-created": r.created, textContent: minutes(Date.now() / 1000 - r.created)})),
    el("div", {className: "buttons"}, ...actions));
}

async function refreshQueue() {
  queue = (await api("GET", "/api/requests")).requests;
  await lookUp(queue.map((r) => r.requested_gtin));
  document.getElementById("requests").replaceChildren(...queue.map(ticket));
  document.getElementById("no-requests").hidden = queue.length > 0;
}

function tickWaiting() {
  for (const node of document.querySelectorAll(".waited")) {
    node.textContent = minutes(Date.now() / 1000 - Number(node.dataset.created));
  }
}

function lookUp(gtins) {
  return Promise.all([...new Set(gtins)].filter((g) => g && !names.has(g)).map((gtin) =>
    api("GET", `/api/products/${gtin}?lang=${LANG}`).then((p) => names.set(p.gtin, p.name)).catch(() => null)));
}

let zones = [];  // every zone of this device, from /api/status: empty cabins are shown too

function signal(rssi) {
  // -90 dBm (barely heard) .. -30 dBm (on the antenna) as a bar, with the number beside it
  const level = rssi === null ? 0 : Math.max(0, Math.min(1, (rssi + 90) / 60));
  return el("span", {className: "signal", "aria-label": `${T["staff.signal"]} ${rssi ?? "—"} dBm`},
    el("meter", {min: 0, max: 1, value: level}),
    el("span", {className: "rssi", textContent: rssi === null ? "—" : `${rssi} dBm`}));
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString(LANG, {hour: "2-digit", minute: "2-digit"});
}

async function refreshPresence() {
  const present = (await api("GET", "/api/presence")).zones;
  await lookUp(Object.values(present).flat().map((t) => t.gtin));
  const listed = [...new Set([...zones, ...Object.keys(present)])];
  const blocks = listed.map((zone) => {
    const tags = present[zone] || [];
    return el("div", {className: "zone", "data-zone": zone},
      el("h3", {textContent: `${zone} · ${tags.length || T["staff.zone_empty"]}`}),
      el("ul", {className: "tags"}, ...tags.map((t) => el("li", {"data-epc": t.epc},
        el("span", {className: "tag-name"}, el("strong", {textContent: names.get(t.gtin) || t.gtin || t.epc.slice(-8)}),
          el("span", {className: "hint", textContent: T["staff.since"].replace("{t}", clock(t.since))})),
        signal(t.rssi)))));
  });
  document.getElementById("presence").replaceChildren(...blocks);
  document.getElementById("no-tags").hidden = Object.values(present).some((tags) => tags.length);
}

function ago(epoch) {
  return epoch ? T["staff.ago"].replace("{t}", minutes(Date.now() / 1000 - epoch)) : T["staff.never"];
}

function row(label, value, bad) {
  return [el("dt", {textContent: label}), el("dd", {className: bad ? "bad" : "", textContent: value})];
}

async function refreshHealth() {
  const status = await api("GET", "/api/status");
  const {reader, camera, outbox, sync} = status;
  zones = status.device.zones;
  const ignored = (status.ignored_reads || {}).below_floor || 0;
  const state = (device) => device ? T["state." + device.state] || device.state : T["staff.absent"];
  document.getElementById("health").replaceChildren(
    ...row(T["staff.reader"], state(reader), reader && reader.state !== "connected"),
    ...(reader ? row("", `${reader.frames_per_s.toFixed(1)} ${T["staff.frames_per_s"]} · ${reader.bad_frames} ${T["staff.bad_frames"]} · ${reader.reconnects} ${T["staff.reconnects"]}`, reader.bad_frames > 0) : []),
    ...(reader ? row("", `${ignored} ${T["staff.ignored"]}`, false) : []),
    ...row(T["staff.camera"], state(camera), camera && camera.state !== "connected"),
    ...row(T["staff.outbox"], `${outbox.depth} ${T["staff.events"]}`, outbox.dropped > 0),
    ...row(T["staff.sync"], sync ? T["state." + sync.state] || sync.state : T["staff.never"], !sync || sync.state !== "connected"),
    ...row(T["staff.last_ack"], ago(sync && sync.last_ack_at), false));
}

function refreshAll() {
  // health first: it names the device's zones, which the presence panel lists even when empty
  return refreshHealth().then(() => Promise.all([refreshQueue(), refreshPresence()])).catch(() => null);
}

listen({request: refreshQueue, tag: refreshPresence}, refreshAll);
setInterval(tickWaiting, 1000);
setInterval(refreshAll, POLL_S * 1000);
