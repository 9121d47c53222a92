// Shared by every edge screen: translated strings, JSON calls, the live event stream, and the
// end of a shopper's visit (hand-off QR code, survey, clearing every personal trace).
"use strict";
const T = JSON.parse(document.getElementById("strings").textContent);
const LANG = document.documentElement.lang;
const SURVEY_S = 30;  // an unanswered survey gives way to the next shopper
const THANKS_S = 3;

// The zone (cabin) this screen shows; one device may run the screens of several cabins (/?zone=).
const SCREEN_ZONE = new URLSearchParams(location.search).get("zone");

async function api(method, path, body) {
  const headers = body ? {"Content-Type": "application/json"} : {};
  if (SCREEN_ZONE) headers["X-Touchpoint-Zone"] = SCREEN_ZONE;  // whose session this call is about
  const response = await fetch(path, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || T["error.generic"]);
  return data;
}

function listen(handlers, onOpen) {
  // EventSource reconnects by itself (the server sends retry:) and resumes with Last-Event-ID;
  // onOpen runs on every (re)connection, so a screen reads the state it may have missed.
  const source = new EventSource("/api/stream");
  if (onOpen) source.addEventListener("open", onOpen);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  return source;
}

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function money(product) {
  return new Intl.NumberFormat(LANG, {style: "currency", currency: product.currency || "EUR"})
    .format(Number(product.price));
}

function colourName(colour) {
  return T["colour." + colour] || colour;
}

function tile(product, onOpen) {
  const button = el("button", {type: "button", className: "tile", "data-gtin": product.gtin},
    el("img", {src: product.image_url, alt: "", loading: "lazy"}),
    el("span", {className: "name", textContent: product.name}),
    el("span", {className: "meta", textContent: `${product.brand} · ${colourName(product.colour)}`}),
    el("span", {className: "price", textContent: money(product)}));
  button.addEventListener("click", () => onOpen(product));
  return el("li", {}, button);
}

function nextShopper() {
  // Nothing of this shopper may stay: storage, the language cookie, the page's DOM and JS state.
  localStorage.clear();
  sessionStorage.clear();
  document.cookie = "lang=; max-age=0; path=/";
  location.replace(SCREEN_ZONE ? `/?zone=${encodeURIComponent(SCREEN_ZONE)}` : "/");
}

function showHandoff(gtins) {
  return api("POST", "/api/handoff", {gtins}).then((made) => {
    document.getElementById("qr").innerHTML = made.qr_svg;  // SVG made on the device (segno)
    document.getElementById("qr").dataset.url = made.url;
    document.getElementById("handoff").hidden = false;
  });
}

let lastTouch = 0;
let touching = Promise.resolve();

function touched() {
  // Every touch is a touchpoint: the first starts the session, later ones keep it alive (one call
  // a second at most). Answering the survey must not start the next shopper's session.
  const now = Date.now();
  if (surveyShowing() || now - lastTouch < 1000) return;
  lastTouch = now;
  touching = api("POST", "/api/session/touch").catch(() => null);
}

async function startSurvey() {
  // The survey shows before the session ends, so its "ended" event does not clear the screen.
  const survey = document.getElementById("survey");
  survey.hidden = false;
  if (survey.dataset.scale === "none") setTimeout(nextShopper, THANKS_S * 1000);
  else setTimeout(nextShopper, SURVEY_S * 1000);
  await touching;  // the touch that pressed "I'm done" reaches the server before the end does
  return api("POST", "/api/session/end").catch(() => null);
}

async function answerSurvey(event) {
  const survey = document.getElementById("survey");
  const score = Number(event.target.dataset.score);
  if (event.target.tagName !== "BUTTON" || Number.isNaN(score)) return;
  survey.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  await api("POST", "/api/feedback", {scale: survey.dataset.scale, score}).catch(() => null);
  document.getElementById("thanks").hidden = false;
  setTimeout(nextShopper, THANKS_S * 1000);
}

function surveyShowing() {
  return !document.getElementById("survey").hidden;
}

function wireShopperScreen() {
  // Hand-off close, survey answers and skip; a session that ends without the shopper (cabin
  // empty, kiosk idle) clears the screen at once.
  document.getElementById("handoff-close").addEventListener("click", () => {
    document.getElementById("handoff").hidden = true;
    document.getElementById("qr").replaceChildren();
  });
  document.getElementById("survey").addEventListener("click", answerSurvey);
  const skip = document.getElementById("survey-skip");
  if (skip) skip.addEventListener("click", nextShopper);
  document.getElementById("end").addEventListener("click", startSurvey);
  document.body.addEventListener("pointerdown", touched);
}

function sessionEnded(change) {
  if (change.kind === "ended" && !surveyShowing()) nextShopper();
}
