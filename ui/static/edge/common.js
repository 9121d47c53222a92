// Shared by every edge screen: translated strings, JSON calls, the live event stream.
"use strict";
const T = JSON.parse(document.getElementById("strings").textContent);
const LANG = document.documentElement.lang;

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? {"Content-Type": "application/json"} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || T["error.generic"]);
  return data;
}

function listen(handlers) {
  // EventSource reconnects by itself (the server sends retry:) and resumes with Last-Event-ID.
  const source = new EventSource("/api/stream");
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  return source;
}

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attributes || {});
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function nextShopper() {
  // The language was this shopper's choice; the next one starts from their browser's default.
  document.cookie = "lang=; max-age=0; path=/";
  location.assign("/");
}
