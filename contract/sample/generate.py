"""Regenerate the bundled fictional sample catalogue and its SVG garment images.

Run from the repository root: ``python -m contract.sample.generate``. Everything is derived from the
table below (company prefix 4012345, GTIN-14 with indicator 0), so the output is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

from contract.catalog import gtin_check_digit

HERE = Path(__file__).parent
COMPANY_PREFIX = "4012345"
VERSION = "2026-11-23T10:00:00Z"

COLOURS = {
    "blau": "#3b6ea8",
    "weiß": "#f4f1ea",
    "salbei": "#9cae8c",
    "schwarz": "#262626",
    "rot": "#b8342f",
    "indigo": "#2f3d6b",
    "grau": "#8a8d91",
    "senf": "#c9a13b",
    "navy": "#1f2a44",
    "gelb": "#e8c948",
    "oliv": "#6b6b3a",
    "beige": "#d8c7a3",
    "bordeaux": "#6d1f2f",
}

# Outlines on a 200 x 240 canvas, one per garment kind.
SHAPES = {
    "shirt": "M60 20 L85 12 L100 30 L115 12 L140 20 L185 60 L165 85 L150 72 L150 225 L50 225 L50 72 L35 85 L15 60 Z",
    "tee": "M65 20 L85 15 Q100 32 115 15 L135 20 L180 55 L160 80 L145 68 L145 220 L55 220 L55 68 L40 80 L20 55 Z",
    "trousers": "M55 15 L145 15 L160 225 L115 225 L100 80 L85 225 L40 225 Z",
    "jumper": "M60 25 L85 15 Q100 28 115 15 L140 25 L180 110 L170 200 L150 200 L148 90 L148 225 "
    "L52 225 L52 90 L50 200 L30 200 L20 110 Z",
    "dress": "M75 15 L90 15 Q100 30 110 15 L125 15 L130 70 L120 90 L175 225 L25 225 L80 90 L70 70 Z",
    "jacket": "M60 18 L85 10 L100 40 L115 10 L140 18 L182 110 L172 205 L150 205 L150 228 L50 228 "
    "L50 205 L28 205 L18 110 Z",
    "skirt": "M65 40 L135 40 L140 60 L180 215 L20 215 L60 60 Z",
}

STYLES = [
    (
        "LS-100",
        {"de": "Leinenhemd", "en": "Linen shirt"},
        "Nordlicht",
        "shirt",
        "49.95",
        ["blau", "weiß", "salbei"],
        ["S", "M", "L", "XL"],
    ),
    (
        "TS-200",
        {"de": "T-Shirt Basic", "en": "Basic T-shirt"},
        "Nordlicht",
        "tee",
        "19.95",
        ["schwarz", "weiß", "rot"],
        ["XS", "S", "M", "L", "XL"],
    ),
    (
        "JN-300",
        {"de": "Jeans Slim Fit", "en": "Slim-fit jeans"},
        "Flussblau",
        "trousers",
        "79.00",
        ["indigo", "schwarz"],
        ["30/32", "32/32", "34/32", "36/32"],
    ),
    (
        "PU-400",
        {"de": "Strickpullover", "en": "Knit jumper"},
        "Alpenwolle",
        "jumper",
        "69.95",
        ["grau", "senf", "navy"],
        ["S", "M", "L", "XL"],
    ),
    (
        "KL-500",
        {"de": "Sommerkleid", "en": "Summer dress"},
        "Flieder",
        "dress",
        "59.95",
        ["gelb", "blau"],
        ["34", "36", "38", "40", "42"],
    ),
    (
        "JA-600",
        {"de": "Regenjacke", "en": "Rain jacket"},
        "Küstenwind",
        "jacket",
        "129.00",
        ["oliv", "rot"],
        ["S", "M", "L", "XL"],
    ),
    (
        "HO-700",
        {"de": "Chinohose", "en": "Chinos"},
        "Flussblau",
        "trousers",
        "59.00",
        ["beige", "navy"],
        ["30", "32", "34", "36"],
    ),
    (
        "RO-800",
        {"de": "Faltenrock", "en": "Pleated skirt"},
        "Flieder",
        "skirt",
        "49.00",
        ["schwarz", "bordeaux"],
        ["34", "36", "38", "40"],
    ),
]


def gtin(style: int, colour: int, size: int) -> str:
    first13 = "0" + COMPANY_PREFIX + f"{(style + 1) * 1000 + colour * 100 + size:05d}"
    return first13 + str(gtin_check_digit(first13))


def svg(shape: str, fill: str) -> str:
    stroke = "#555" if fill.lower() in ("#f4f1ea", "#d8c7a3") else "#111"
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 240" width="200" height="240">'
        f'<path d="{SHAPES[shape]}" fill="{fill}" stroke="{stroke}" stroke-width="3" '
        'stroke-linejoin="round"/></svg>\n'
    )


def slug(text: str) -> str:
    return text.lower().replace("ß", "ss")


def build() -> tuple[str, dict[str, str]]:
    """The catalogue's JSON text and the SVG images (relative path -> text) it refers to."""
    products = []
    images = {}
    for s, (style, name, brand, shape, price, colours, sizes) in enumerate(STYLES):
        for c, colour in enumerate(colours):
            image = f"images/{slug(style)}-{slug(colour)}.svg"
            images[image] = svg(shape, COLOURS[colour])
            for z, size in enumerate(sizes):
                row = {
                    "gtin": gtin(s, c, z),
                    "style": style,
                    "name": name,
                    "brand": brand,
                    "colour": colour,
                    "size": size,
                    "price": price,
                    "image": image,
                    "stock": (s * 7 + c * 5 + z * 3) % 6,
                }
                if c == 0 and z == 1:  # one 125 kHz tag per style, for kiosks with a reader pad
                    row["tags"] = [f"62E3086C{s:02X}"]
                products.append(row)
    document = {"version": VERSION, "currency": "EUR", "products": products}
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n", images


if __name__ == "__main__":
    catalog_text, image_texts = build()
    for relative, text in image_texts.items():
        (HERE / relative).write_text(text, encoding="utf-8")
    (HERE / "catalog.json").write_text(catalog_text, encoding="utf-8")
    print(f"{len(image_texts)} images and {HERE / 'catalog.json'} written")
