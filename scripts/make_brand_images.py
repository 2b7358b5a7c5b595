"""Draw HA Ingestor's brand images into custom_components/ha_ingestor/brand/.

    source scripts/_python.sh && in_python python scripts/make_brand_images.py

Reproducible: only Pillow (pinned through Home Assistant) and its bundled font are used, so
the same Pillow writes the same bytes. The mark is a deep blue rounded square with a white
house, an arrow and a database cylinder: Home Assistant's states streaming into InfluxDB.

Files (Home Assistant's brand image names and sizes):
    icon.png, icon@2x.png            256x256, 512x512
    logo.png, logo@2x.png            height 128 / 256, mark + "HA Ingestor" in deep blue
    dark_logo.png, dark_logo@2x.png  the same with white text, for dark themes
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = (
    Path(__file__).resolve().parent.parent
    / "custom_components"
    / "ha_ingestor"
    / "brand"
)

SS = 4  # supersampling factor: draw big, then downscale with a good filter (anti-aliasing)
BLUE_TOP = (37, 99, 235)  # gradient of the rounded square, top to bottom
BLUE_BOTTOM = (30, 58, 138)
INK = BLUE_BOTTOM  # colour of the symbols' inner details (door, disc lines)
WHITE = (255, 255, 255, 255)
TEXT_LIGHT = (30, 58, 138, 255)  # "HA Ingestor" on light backgrounds
TEXT_DARK = (255, 255, 255, 255)  # ... and on dark ones


def mark(size: int) -> Image.Image:
    """Draw the square icon, `size` pixels wide, on a transparent background."""
    n = size * SS
    u = n / 1024  # the drawing below is laid out on a 1024 grid

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [x0 * u, y0 * u, x1 * u, y1 * u]

    def pts(*xy: tuple[float, float]) -> list[tuple[float, float]]:
        return [(x * u, y * u) for x, y in xy]

    # Rounded square filled with a vertical gradient.
    gradient = Image.new("RGBA", (1, 256))
    for y in range(256):
        t = y / 255
        gradient.putpixel(
            (0, y),
            (
                *(
                    round(a + (b - a) * t)
                    for a, b in zip(BLUE_TOP, BLUE_BOTTOM, strict=True)
                ),
                255,
            ),
        )
    background = gradient.resize((n, n), Image.Resampling.BICUBIC)
    shape = Image.new("L", (n, n), 0)
    ImageDraw.Draw(shape).rounded_rectangle(
        box(0, 0, 1023, 1023), radius=224 * u, fill=255
    )
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    img.paste(background, (0, 0), shape)

    d = ImageDraw.Draw(img)

    # House: chimney, roof, body, door.
    d.rectangle(box(380, 320, 426, 440), fill=WHITE)
    d.polygon(pts((106, 494), (290, 310), (474, 494)), fill=WHITE)
    d.rectangle(box(156, 480, 424, 730), fill=WHITE)
    d.rounded_rectangle(box(252, 594, 328, 730), radius=34 * u, fill=INK)

    # Arrow from the house into the database.
    d.rectangle(box(494, 498, 574, 552), fill=WHITE)
    d.polygon(pts((562, 448), (642, 525), (562, 602)), fill=WHITE)

    # Database cylinder: top ellipse, body, and two disc lines.
    left, right, top, bottom, rim = 670, 918, 300, 730, 58
    d.rectangle(box(left, top + rim, right, bottom - rim), fill=WHITE)
    d.ellipse(box(left, bottom - 2 * rim, right, bottom), fill=WHITE)
    d.ellipse(box(left, top, right, top + 2 * rim), fill=WHITE)
    line = 16
    d.arc(box(left, top, right, top + 2 * rim), 0, 180, fill=INK, width=round(line * u))
    for y in (top + 136, top + 258):
        d.arc(box(left, y, right, y + 2 * rim), 8, 172, fill=INK, width=round(line * u))

    return img.resize((size, size), Image.Resampling.LANCZOS)


def logo(height: int, text_colour: tuple[int, int, int, int]) -> Image.Image:
    """Draw the mark and "HA Ingestor", `height` pixels tall, on transparent."""
    h = height * SS
    font = ImageFont.load_default(size=round(h * 0.56))
    text = "HA Ingestor"
    # The bundled font is regular: embolden it a little.
    stroke = max(1, round(h * 0.012))
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    x0, _, x1, _ = probe.textbbox((0, 0), text, font=font, stroke_width=stroke)
    gap = round(h * 0.22)
    width = h + gap + round(x1 - x0)
    img = Image.new("RGBA", (width, h), (0, 0, 0, 0))
    img.alpha_composite(mark(height).resize((h, h), Image.Resampling.LANCZOS))
    # Centre the capitals' box (not the descenders') on the mark.
    cap_top, cap_bottom = probe.textbbox((0, 0), "HI", font=font)[1::2]
    y = (h - (cap_bottom - cap_top)) / 2 - cap_top
    ImageDraw.Draw(img).text(
        (h + gap - x0, y),
        text,
        font=font,
        fill=text_colour,
        stroke_width=stroke,
        stroke_fill=text_colour,
    )
    # An even width, so that the 1x logo is exactly half of the 2x one.
    return img.resize((2 * round(width / SS / 2), height), Image.Resampling.LANCZOS)


def half(image: Image.Image) -> Image.Image:
    """Scale an image down to half its size."""
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def main() -> None:
    """Write all the brand images."""
    OUT.mkdir(parents=True, exist_ok=True)
    logo_light, logo_dark = logo(256, TEXT_LIGHT), logo(256, TEXT_DARK)
    images = {
        "icon.png": mark(256),
        "icon@2x.png": mark(512),
        "logo.png": half(logo_light),
        "logo@2x.png": logo_light,
        "dark_logo.png": half(logo_dark),
        "dark_logo@2x.png": logo_dark,
    }
    for name, image in images.items():
        image.save(OUT / name, optimize=True)
        print(f"{OUT / name}: {image.width}x{image.height}")


if __name__ == "__main__":
    main()
