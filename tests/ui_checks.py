"""What every screen must pass in a real browser: local-only requests, page weight, touch-target
size and text contrast, measured in the page itself (Playwright for Python, headless Chromium)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page

SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
MAX_PAGE_BYTES = 300 * 1024
MIN_TARGET_PX = 48
MIN_CONTRAST = 4.5  # WCAG AA for normal text; applied to all text, large text included

# Sums what the page loaded, images and the never-ending event stream left out.
PAGE_BYTES_JS = """() => {
  const entries = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
  return entries.filter((e) => e.initiatorType !== "img" && !e.name.includes("/catalog/")
                               && !e.name.endsWith("/api/stream"))
                .reduce((sum, e) => sum + e.decodedBodySize, 0);
}"""

# Every visible button, link and input whose box is smaller than the minimum touch target.
SMALL_TARGETS_JS = """(minimum) => [...document.querySelectorAll("button, a, input, select, textarea")]
  .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== "hidden")
  .map((e) => { const r = e.getBoundingClientRect(); return {text: (e.textContent || e.name || "").trim(),
                                                              width: r.width, height: r.height}; })
  .filter((r) => r.width < minimum - 0.5 || r.height < minimum - 0.5)"""

# WCAG 2 contrast of each visible text node's colour against the backgrounds composited behind it.
CONTRAST_JS = """() => {
  const rgba = (css) => {
    const p = css.match(/[\\d.]+/g).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const over = (top, bottom) => bottom.map((v, i) => top[i] * top[3] + v * (1 - top[3]));
  const background = (node) => {
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const c = rgba(getComputedStyle(n).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255]);
  };
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim();
    const node = walker.currentNode.parentElement;
    if (!text || node.closest("script, [hidden]") || !node.getClientRects().length) continue;
    const style = getComputedStyle(node);
    if (style.visibility === "hidden") continue;
    const bg = background(node);
    const fg = over(rgba(style.color), bg);
    const [a, b] = [luminance(fg), luminance(bg)];
    found.push({text: text.slice(0, 40), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)});
  }
  return found;
}"""


@dataclass
class Requests:
    """Every URL the browser asked for during a test."""

    urls: list[str] = field(default_factory=list)

    def watch(self, context: BrowserContext) -> None:
        context.on("request", lambda request: self.urls.append(request.url))

    def foreign(self) -> list[str]:
        return [url for url in self.urls if urlsplit(url).hostname != "127.0.0.1"]


def check_screen(page: Page) -> None:
    """Page weight, touch targets and contrast of what the page shows now."""
    weight = page.evaluate(PAGE_BYTES_JS)
    assert 0 < weight < MAX_PAGE_BYTES, weight
    assert page.evaluate(SMALL_TARGETS_JS, MIN_TARGET_PX) == []
    texts = page.evaluate(CONTRAST_JS)
    assert texts, "no visible text measured"
    low = [t for t in texts if t["ratio"] < MIN_CONTRAST]
    assert low == [], low


VISIBLE_IMAGES_LOADED = """[...document.images].every(img => {
    const r = img.getBoundingClientRect();
    const offScreen = r.bottom <= 0 || r.top >= innerHeight || r.right <= 0 || r.left >= innerWidth;
    return img.complete || offScreen;
})"""


def screenshot(page: Page, name: str) -> Path:
    """Save ``docs/screenshots/{name}.png`` for the README; returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("document.fonts.ready")
    # Cards arrive with their images: wait until every image on screen has loaded (or failed);
    # lazy images off screen never load, so they do not count.
    page.wait_for_function(VISIBLE_IMAGES_LOADED, timeout=5000)
    page.screenshot(path=str(path), animations="disabled")
    return path
