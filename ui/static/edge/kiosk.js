// The store kiosk: an attract loop while idle; browse, search, a tag on the pad, stock by size,
// "send to my phone", loyalty QR code with a personal home, survey; idle clears everything.
"use strict";
const screen = document.getElementById("screen");
const ZONE = screen.dataset.zone;
const detail = document.getElementById("detail");
const ATTRACT_STEP_S = 4;

function showScreen() {
  document.getElementById("attract").hidden = true;
  screen.hidden = false;
  document.getElementById("kiosk-actions").hidden = false;
}

async function attractLoop() {
  const {products} = await api("GET", `/api/browse?lang=${LANG}`);
  let index = 0;
  const step = () => {
    if (!products.length) return;
    const product = products[index++ % products.length];
    document.getElementById("attract-image").src = product.image_url;
    document.getElementById("attract-name").textContent = `${product.name} · ${money(product)}`;
  };
  step();
  setInterval(step, ATTRACT_STEP_S * 1000);
  return products;
}

function showList(products, via, heading) {
  const title = document.getElementById("list-heading");
  title.textContent = title.dataset[heading];
  document.getElementById("results").replaceChildren(...products.map((p) => tile(p, () => open(p.gtin, via))));
  document.getElementById("no-results").hidden = products.length > 0;
  home();
}

function home() {
  detail.hidden = true;
  document.getElementById("home").hidden = false;
  document.getElementById("back").hidden = true;
  document.getElementById("to-phone").hidden = true;
}

async function search(event) {
  event.preventDefault();
  const q = new FormData(event.target).get("q").trim();
  if (!q) return;
  const found = await api("GET", `/api/products?q=${encodeURIComponent(q)}&lang=${LANG}`);
  const colours = new Map();  // one tile per colour of a style: its first size in stock
  for (const p of found.products) {
    const key = `${p.style} ${p.colour}`;
    if (!colours.has(key) || (colours.get(key).stock === 0 && p.stock > 0)) colours.set(key, p);
  }
  showList([...colours.values()], "search", "results");
}

function stockChips(product) {
  const rows = [product, ...product.siblings].filter((row) => row.colour === product.colour);
  rows.sort((a, b) => a.gtin.localeCompare(b.gtin));
  return rows.map((row) => el("li", {}, el("span", {
    className: "chip button", ...(row.gtin === product.gtin ? {"aria-current": "true"} : {}),
  }, row.size, el("span", {className: "count", textContent: row.stock > 0 ? `${row.stock} ${T["product.in_stock"]}` : T["product.sold_out"]}))));
}

async function open(gtin, via) {
  showScreen();
  const viaQuery = via ? `via=${via}&` : "";  // a tag on the pad was recorded when it arrived
  const product = await api("GET", `/api/products/${gtin}?${viaQuery}lang=${LANG}`);
  const colours = new Map();
  for (const row of product.siblings) if (row.colour !== product.colour && !colours.has(row.colour)) colours.set(row.colour, row);
  const colourButtons = [...colours.values()].map((row) => {
    const button = el("button", {type: "button", className: "chip", textContent: colourName(row.colour)});
    button.addEventListener("click", () => open(row.gtin, "browse"));
    return el("li", {}, button);
  });
  const goesWith = el("ul", {className: "tiles"});
  detail.replaceChildren(
    el("img", {src: product.image_url, alt: ""}),
    el("h2", {textContent: product.name}),
    el("p", {className: "meta", textContent: `${product.brand} · ${colourName(product.colour)}`}),
    el("p", {className: "price", textContent: money(product)}),
    el("h3", {textContent: T["kiosk.stock"]}), el("ul", {className: "chips"}, ...stockChips(product)),
    colourButtons.length && el("h3", {textContent: T["kiosk.other_colours"]}),
    colourButtons.length && el("ul", {className: "chips"}, ...colourButtons),
    el("h3", {textContent: T["suggest.heading"]}), goesWith);
  detail.dataset.gtin = product.gtin;
  detail.hidden = false;
  document.getElementById("home").hidden = true;
  document.getElementById("back").hidden = false;
  document.getElementById("to-phone").hidden = false;
  window.scrollTo(0, 0);
  const found = await api("GET", `/api/suggestions?gtin=${product.gtin}&lang=${LANG}`);
  goesWith.replaceChildren(...found.products.map((p) => tile(p, () => open(p.gtin, "recommendation"))));
}

async function personalHome() {
  document.getElementById("welcome").hidden = false;
  const found = await api("GET", `/api/suggestions?lang=${LANG}`);
  if (!found.personal) return;
  document.getElementById("personal").replaceChildren(
    ...found.products.map((p) => tile(p, () => open(p.gtin, "recommendation"))));
  document.getElementById("for-you").hidden = false;
}

async function start() {
  const [state, products] = await Promise.all([api("GET", "/api/session"), attractLoop()]);
  showList(products, "browse", "browse");
  if (state.session) {
    showScreen();
    if (state.session.identified) personalHome();
  }
}

wireShopperScreen();
document.body.addEventListener("pointerdown", () => { if (!surveyShowing()) showScreen(); });
document.getElementById("search").addEventListener("submit", search);
document.getElementById("back").addEventListener("click", home);
document.getElementById("to-phone").addEventListener("click", () => showHandoff([detail.dataset.gtin]));
listen({
  tag: (t) => { if (t.kind === "arrived" && t.zone === ZONE && t.gtin) open(t.gtin, null); },
  session: (s) => {
    if (s.zone !== ZONE) return;  // another cabin's shopper on the same device
    if (s.kind === "identified") { showScreen(); personalHome(); }
    sessionEnded(s);
  },
});
start();
