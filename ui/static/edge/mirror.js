// The fitting-room mirror: a card per garment in the cabin (live), one-touch size and colour
// requests with their state, "goes well with", hand-off to the phone, loyalty, survey.
"use strict";
const screen = document.getElementById("screen");
const ZONE = screen.dataset.zone;
const garments = new Map();  // epc -> {product, node}
const requests = new Map();  // request id -> request, this session's only
let sessionId = null;
let tagEvents = 0;  // tag events received from the stream, to tell them from an older snapshot
const lastTagEvent = new Map();  // epc -> number of the last tag event about it

function inStock(product) {
  // this row and its in-stock siblings: the sizes and colours this store has of the style
  return [...(product.stock > 0 ? [product] : []), ...product.siblings];
}

function sizeChips(product, held) {
  const sizes = inStock(product).filter((row) => row.colour === product.colour);
  return sizes.map((row) => {
    if (held && row.gtin === product.gtin) {
      return el("li", {}, el("span", {className: "chip button", "aria-current": "true",
        textContent: `${row.size}`}, el("span", {className: "count", textContent: T["product.yours"]})));
    }
    const button = el("button", {type: "button", className: "chip", textContent: row.size,
      "aria-label": `${T["mirror.bring"]} ${row.size}`});
    button.addEventListener("click", () => ask(product, {size: row.size}));
    return el("li", {}, button);
  });
}

function colourChips(product) {
  const byColour = new Map();
  for (const row of inStock(product)) {
    if (row.colour === product.colour) continue;
    const best = byColour.get(row.colour);
    if (!best || row.size === product.size) byColour.set(row.colour, row);
  }
  return [...byColour.values()].map((row) => {
    const button = el("button", {type: "button", className: "chip", textContent: colourName(row.colour),
      "aria-label": `${T["mirror.bring"]} ${colourName(row.colour)} ${row.size}`});
    button.addEventListener("click", () => ask(product, {colour: row.colour, size: row.size}));
    return el("li", {}, button);
  });
}

function productCard(product, held) {
  const sizes = sizeChips(product, held);
  const colours = colourChips(product);
  const options = el("div", {className: "options"},
    sizes.length && el("h3", {textContent: T["mirror.sizes"]}), sizes.length && el("ul", {className: "chips"}, ...sizes),
    colours.length && el("h3", {textContent: T["mirror.colours"]}), colours.length && el("ul", {className: "chips"}, ...colours),
    sizes.length + colours.length <= (held ? 1 : 0) && el("p", {className: "hint", textContent: T["mirror.none_other"]}));
  return el("li", {className: "garment", "data-gtin": product.gtin},
    el("img", {src: product.image_url, alt: ""}),
    el("h2", {textContent: product.name}),
    el("p", {className: "meta", textContent: `${product.brand} · ${colourName(product.colour)} · ${T["product.size"]} ${product.size}`}),
    el("p", {className: "price", textContent: money(product)}),
    options, el("ul", {className: "requests"}));
}

async function ask(product, choice) {
  const made = await api("POST", "/api/requests", {gtin: product.gtin, ...choice});
  sessionId = made.session_id;
  requests.set(made.id, made);
  showRequests();
}

function showRequests() {
  for (const node of document.querySelectorAll(".garment")) {
    const mine = [...requests.values()].filter((r) => r.gtin === node.dataset.gtin);
    node.querySelector(".requests").replaceChildren(...mine.map((r) =>
      el("li", {className: `request ${r.state}`, "data-request": r.id},
        el("span", {textContent: `${colourName(r.colour)} · ${r.size}`}),
        el("span", {className: "state", textContent: T["request." + r.state]}))));
  }
}

async function arrived(epc, gtin, shown) {
  // shown: the product a tag event carries, with its name in every language; else it is looked up
  if (garments.has(epc)) return;
  // a slot taken before the lookup keeps the cards in arrival order and a repeated event out
  const slot = el("li", {hidden: true});
  garments.set(epc, null);
  document.getElementById("garments").append(slot);
  const product = shown ? {...shown, name: shown.name[LANG] || Object.values(shown.name)[0]}
    : await api("GET", `/api/products/${gtin}?lang=${LANG}`).catch(() => null);
  if (!product && garments.get(epc) === null) garments.delete(epc);  // a later event may try again
  if (!garments.has(epc) || !product) { slot.remove(); return; }  // it left while we asked
  const node = productCard(product, true);
  node.dataset.epc = epc;
  garments.set(epc, {product, node});
  slot.replaceWith(node);
  changed();
}

function departed(epc) {
  const garment = garments.get(epc);
  garments.delete(epc);
  if (garment) garment.node.remove();
  changed();
}

function changed() {
  const shown = [...garments.values()].filter(Boolean);
  document.getElementById("empty").hidden = shown.length > 0;
  document.getElementById("bring-hint").hidden = shown.length === 0;
  document.getElementById("to-phone").disabled = shown.length === 0;
  showRequests();
  suggest();
}

async function suggest() {
  const gtins = [...garments.values()].filter(Boolean).map((g) => g.product.gtin);
  const query = gtins.map((g) => `gtin=${g}`).join("&");
  const found = await api("GET", `/api/suggestions?${query}&lang=${LANG}`).catch(() => null);
  const section = document.getElementById("suggest");
  if (!found || gtins.length === 0) { section.hidden = true; return; }
  const heading = document.getElementById("suggest-heading");
  heading.textContent = found.personal ? heading.dataset.personal : T["suggest.heading"];
  document.getElementById("suggestions").replaceChildren(...found.products.map((p) => tile(p, openSuggestion)));
  section.hidden = found.products.length === 0;
}

async function openSuggestion(product) {
  const full = await api("GET", `/api/products/${product.gtin}?via=recommendation&lang=${LANG}`);
  const close = el("button", {type: "button", className: "secondary", textContent: T["handoff.close"]});
  const card = productCard(full, false);
  const sheet = el("div", {className: "overlay", id: "suggestion"},
    el("div", {className: "sheet"}, el("ul", {className: "garments"}, card), close));
  close.addEventListener("click", () => sheet.remove());
  document.body.append(sheet);
  showRequests();
}

function welcome() {
  document.getElementById("welcome").hidden = false;
  suggest();
}

async function start() {
  const state = await api("GET", "/api/session");
  if (state.session) {
    sessionId = state.session.session_id;
    for (const r of state.session.requests) requests.set(r.id, r);
    if (state.session.identified) welcome();
  }
  // A tag event that lands while the snapshot is on its way is newer than the snapshot: only
  // garments the stream has not touched since the request may be removed for missing from it.
  const asked = tagEvents;
  const present = (await api("GET", "/api/presence")).zones[ZONE] || [];
  for (const epc of [...garments.keys()]) {
    if ((lastTagEvent.get(epc) || 0) <= asked && !present.some((t) => t.epc === epc)) departed(epc);
  }
  for (const tag of present) if (tag.gtin) arrived(tag.epc, tag.gtin);
}

wireShopperScreen();
document.getElementById("to-phone").addEventListener("click", () =>
  showHandoff([...new Set([...garments.values()].filter(Boolean).map((g) => g.product.gtin))]));
listen({
  tag: (t) => {
    if (t.zone !== ZONE) return;
    lastTagEvent.set(t.epc, ++tagEvents);
    if (t.kind === "arrived" && t.gtin) arrived(t.epc, t.gtin, t.product);
    if (t.kind === "departed") departed(t.epc);
  },
  request: (r) => {
    if (r.session_id !== sessionId && !requests.has(r.id)) return;
    requests.set(r.id, r);
    showRequests();
  },
  session: (s) => {
    if (s.zone !== ZONE) return;  // another cabin's shopper on the same device
    if (s.kind === "started") sessionId = s.session_id;
    if (s.kind === "identified" && s.session_id === sessionId) welcome();
    sessionEnded(s);
  },
}, start);
