"""Screen benchmark: from a garment's tag on the reader to its card on the mirror, in Chromium.

    .venv/bin/python -m bench.bench_screens               # 40 garments
    .venv/bin/python -m bench.bench_screens --tags 10     # a quick run

The edge server (cheroot) reads a simulated M100 reader on a pseudo-terminal; headless Chromium
shows the mirror screen. For each garment, this process calls ``Simulator.present`` and the page
stamps (``Date.now()``, the same clock) two moments: the baseline, when a second, bare
``EventSource`` on the same page receives the ``tag`` event, and the result, when the garment's
card is in the DOM with its product (``MutationObserver``). The card needs one product lookup
more than the event, so the ratio says what the screen adds to the stream. The times include up
to one simulator period (1 / rate) before the first frame is written.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.bench_edge import percentile
from common import config as configuration
from drivers import encode_sgtin96
from drivers.simulator import Simulator
from kiosk.server import EdgeServer

GTINS = ("04012345010015", "04012345030013", "04012345040029", "04012345060010")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
STAMPS_JS = """() => {
  window.stamps = {sse: {}, card: {}};
  new EventSource("/api/stream").addEventListener("tag", (e) => {
    const tag = JSON.parse(e.data);
    if (tag.kind === "arrived") window.stamps.sse[tag.epc] = Date.now();
  });
  new MutationObserver(() => {
    for (const card of document.querySelectorAll(".garment[data-epc]")) {
      window.stamps.card[card.dataset.epc] ??= Date.now();
    }
  }).observe(document.getElementById("garments"), {childList: true});
}"""


def run(tags: int, rate: float) -> dict[str, list[float]]:
    """Milliseconds from ``present`` to the tag event and to the card, per garment."""
    latencies: dict[str, list[float]] = {"sse": [], "card": []}
    with tempfile.TemporaryDirectory() as workdir, Simulator("m100", rate=rate) as simulator:
        simulator.start()
        config = configuration.from_dict(
            configuration.EdgeConfig,
            {
                "device": {"store_id": "bench", "device_id": "mirror-1", "role": "mirror"},
                "web": {"listen": "127.0.0.1:0", "threads": 8},
                "reader": {"protocol": "m100", "url": simulator.path, "zone": "cabin-1", "departure_s": 0.5},
                "outbox": {"path": str(Path(workdir) / "edge.db")},
            },
        )
        server = EdgeServer(config)
        server.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 720, "height": 1280})
                page.goto(server.url)
                page.wait_for_selector("#empty")
                page.evaluate(STAMPS_JS)
                for n in range(tags):
                    epc = encode_sgtin96(GTINS[n % len(GTINS)], 1000 + n, 7)
                    started = time.time() * 1000
                    simulator.present(epc)
                    page.wait_for_function("(epc) => window.stamps.card[epc]", arg=epc)
                    stamps = page.evaluate("(epc) => [window.stamps.sse[epc], window.stamps.card[epc]]", epc)
                    latencies["sse"].append(stamps[0] - started)
                    latencies["card"].append(stamps[1] - started)
                    simulator.remove(epc)
                    page.wait_for_selector(f'.garment[data-epc="{epc}"]', state="detached")
                browser.close()
        finally:
            server.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tags", type=int, default=40, help="garments hung up one after another")
    parser.add_argument("--rate", type=float, default=50.0, help="simulated reads per second per tag")
    args = parser.parse_args()
    latencies = run(args.tags, args.rate)
    print(f"{args.tags} garments, simulator at {args.rate:g} reads/s; ms from present() to:")
    print("| moment | median | p95 | max |")
    print("|---|---|---|---|")
    for name, label in (("sse", "tag event in the page (baseline)"), ("card", "card in the DOM")):
        values = latencies[name]
        print(f"| {label} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} | {max(values):.1f} |")
    ratio = statistics.median(latencies["card"]) / statistics.median(latencies["sse"])
    print(f"card / baseline (medians): {ratio:.2f}x")


if __name__ == "__main__":
    main()
