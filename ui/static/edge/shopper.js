// The mirror or kiosk screen: garments in the cabin (live), search, product detail, requests, survey.
"use strict";
const screen = document.getElementById("screen");
const role = screen.dataset.role;
const detail = document.getElementById("detail");

function card(product, onOpen) {
  const item = el("li", {className: "card"},
    el("img", {src: product.image_url || "/catalog/" + product.image, alt: ""}),
    el("strong", {textContent: product.name}),
    el("span", {textContent: `${product.colour} · ${product.size} · ${product.price} €`}));
  item.addEventListener("click", onOpen);
  return item;
}

async function open(gtin, via) {
  const product = await api("GET", `/api/products/${gtin}?via=${via}&lang=${LANG}`);
  const stock = product.stock > 0 ? `${product.stock} ${T["product.in_stock"]}` : T["product.sold_out"];
  const siblings = el("ul", {className: "siblings"}, ...product.siblings.map((s) => {
    const button = el("button", {type: "button", textContent: `${s.colour} ${s.size}`});
    button.addEventListener("click", () => request(product.gtin, s));
    return el("li", {}, button);
  }));
  detail.replaceChildren(
    el("img", {src: product.image_url, alt: ""}),
    el("h2", {textContent: `${product.brand} · ${product.name}`}),
    el("p", {textContent: `${product.colour} · ${T["product.size"]} ${product.size} · ${product.price} € · ${stock}`}),
    el("h3", {textContent: T["product.other_sizes"]}), siblings, el("p", {id: "requested", hidden: true}));
  detail.hidden = false;
  detail.dataset.gtin = product.gtin;
  detail.scrollIntoView({behavior: "smooth"});
}

async function request(gtin, sibling) {
  await api("POST", "/api/requests", {gtin, size: sibling.size, colour: sibling.colour});
  const note = document.getElementById("requested");
  note.textContent = `${T["product.requested"]} (${sibling.colour} ${sibling.size})`;
  note.hidden = false;
}

async function showGarments() {
  const list = document.getElementById("garments");
  const presence = await api("GET", "/api/presence");
  const tags = presence.zones[screen.dataset.zone] || [];
  const cards = [];
  for (const tag of tags.filter((t) => t.gtin)) {
    const product = await api("GET", `/api/products/${tag.gtin}?lang=${LANG}`).catch(() => null);
    if (product) cards.push(card(product, () => open(product.gtin, "tag")));
  }
  list.replaceChildren(...cards);
  document.getElementById("empty").hidden = cards.length > 0;
}

async function search(event) {
  event.preventDefault();
  const q = new FormData(event.target).get("q");
  const found = await api("GET", `/api/products?q=${encodeURIComponent(q)}&lang=${LANG}`);
  document.getElementById("results").replaceChildren(
    ...found.products.map((p) => card(p, () => open(p.gtin, "search"))));
  document.getElementById("no-results").hidden = found.products.length > 0;
}

async function endSession() {
  // The survey shows before the session ends, so its "ended" event does not clear the screen.
  detail.hidden = true;
  screen.hidden = true;
  document.getElementById("survey").hidden = false;
  await api("POST", "/api/session/end");
  if (screen.dataset.survey === "none") setTimeout(nextShopper, 3000);
}

async function answer(event) {
  const score = Number(event.target.dataset.score);
  if (Number.isNaN(score)) return;
  await api("POST", "/api/feedback", {scale: screen.dataset.survey, score}).catch(() => null);
  document.getElementById("thanks").hidden = false;
  setTimeout(nextShopper, 3000);
}

async function toPhone() {
  const gtin = detail.dataset.gtin;
  if (!gtin) return;
  const handoff = await api("POST", "/api/handoff", {gtins: [gtin]});
  document.getElementById("qr").innerHTML = handoff.qr_svg;  // SVG made by the device (segno)
  document.getElementById("handoff").hidden = false;
}

document.getElementById("end").addEventListener("click", endSession);
document.getElementById("to-phone").addEventListener("click", toPhone);
document.getElementById("survey").addEventListener("click", answer);
function sessionChanged(change) {
  // Timed out (cabin empty, kiosk idle): clear the screen for the next shopper.
  if (change.kind === "ended" && document.getElementById("survey").hidden) nextShopper();
}

if (role === "mirror") {
  showGarments();
  listen({tag: showGarments, session: sessionChanged});
} else {
  document.getElementById("search").addEventListener("submit", search);
  document.body.addEventListener("pointerdown", () => api("POST", "/api/session/touch").catch(() => null));
  listen({tag: (t) => { if (t.kind === "arrived" && t.gtin) open(t.gtin, "tag"); }, session: sessionChanged});
}
