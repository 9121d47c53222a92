// The staff screen: the live request queue, tags present, reader and outbox state.
"use strict";
async function refresh() {
  const [queue, presence, status] = await Promise.all([
    api("GET", "/api/requests"), api("GET", "/api/presence"), api("GET", "/api/status")]);
  document.getElementById("requests").replaceChildren(...queue.requests.map((r) => {
    const actions = ["claim", "brought", "cancel"].map((action) => {
      const button = el("button", {type: "button", textContent: T["staff." + action]});
      button.addEventListener("click", () => api("POST", `/api/requests/${r.id}/${action}`).then(refresh));
      return button;
    });
    return el("li", {className: r.state}, el("strong", {textContent: `${r.zone}: ${r.colour} ${r.size}`}),
      el("span", {textContent: ` ${r.requested_gtin} (${r.state}) `}), ...actions);
  }));
  document.getElementById("no-requests").hidden = queue.requests.length > 0;
  document.getElementById("presence").replaceChildren(...Object.entries(presence.zones).flatMap(
    ([zone, tags]) => tags.map((t) => el("li", {textContent: `${zone}: ${t.epc} ${t.gtin || ""} ${t.rssi ?? ""}`}))));
  document.getElementById("status").textContent =
    `${T["staff.reader"]}: ${status.reader ? status.reader.state : "-"}\n${T["staff.outbox"]}: ${status.outbox.depth}`;
}
refresh();
listen({request: refresh, tag: refresh});
setInterval(refresh, 10000);
