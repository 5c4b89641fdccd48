"""Procedural images: character portraits and storyboard frames drawn with Pillow.

:class:`ProceduralImageGenerator` reads the labelled sections of a prompt (see
:func:`~vimax_nb.providers.base.parse_prompt`) and draws, without any model:

* a **portrait** (a ``view`` section: front, side or back) -- a full-height figure
  whose colours come only from the character's name and features
  (:func:`character_look`), so every view of a character matches, with the name
  written under it; the PNG's alpha channel marks the figure (see ``FIGURE_ALPHA``);
* a **frame** (anything else) -- the scene's background (the same ``style`` and
  ``scene`` always give the same background, see :func:`scene_setting`), props seeded
  by the description, the characters cut out of their front portraits (the reference
  images, in the order of ``characters``) and placed by shot and camera -- the last
  frame moves and scales them -- then the style's finish and a caption strip.

The output depends only on the prompt, the size and the reference images' pixels.
"""

from __future__ import annotations

import colorsys
import hashlib
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

from ..base import ImageOutput, PathLike, ProviderError, parse_prompt, parse_size

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
MAX_SIDE = 4096
PROVIDER = "procedural"
#: Portraits are RGBA: opaque on the figure, alpha 254 (invisible) on the backdrop, so
#: frames cut the figure out exactly; other portraits are cut out by colour.
FIGURE_ALPHA = 255


def _rng(*parts: object) -> random.Random:
    """A random generator seeded from a sha256 of ``parts`` (stable across runs)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    red, green, blue = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return red, green, blue


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _hex(code: str) -> RGB:
    return int(code[1:3], 16), int(code[3:5], 16), int(code[5:7], 16)


@dataclass(frozen=True, slots=True)
class Palette:
    """A style's colours: sky (top and horizon), ground, detail, ink and backdrop."""

    sky: RGB
    horizon: RGB
    ground: RGB
    detail: RGB
    ink: RGB
    backdrop: RGB


# Checked in this order against the style text (so "film noir" is noir, not cinematic).
_STYLES: dict[str, tuple[tuple[str, ...], str]] = {
    "noir": (("noir",), "#505050 #a0a0a0 #383838 #787878 #101010 #d8d8d8"),
    "pixel art": (("pixel",), "#3b5dc9 #73eff7 #38b764 #257179 #1a1c2c #f4f4f4"),
    "watercolor": (("watercolo",), "#9cc9e8 #f3e7d3 #a8c98f #6f9d77 #4a4a5a #f6f1e7"),
    "oil painting": (("oil",), "#3d5a80 #e0c097 #6b705c #a5633c #2b2118 #efe3cf"),
    "anime": (("anime", "manga"), "#4aa3ff #c9ecff #7cd67c #ff8fab #22223b #fff5fa"),
    "claymation": (("clay",), "#7ec8e3 #fde2a7 #8bc34a #e76f51 #3e2723 #fff3e0"),
    "comic": (("comic",), "#2196f3 #ffeb3b #4caf50 #f44336 #111111 #fffde7"),
    "sketch": (("sketch", "pencil"), "#b0b0b8 #e8e6e0 #c8c4b8 #8a8678 #2a2a2a #f4efe4"),
    "pastel": (("pastel",), "#b8c0ff #ffd6e0 #c1f0c1 #ffc8a2 #6d6875 #fff8f0"),
    "cyberpunk": (("cyber", "neon"), "#1a0533 #ff2a6d #1b1b2f #05d9e8 #0d0221 #2b1b45"),
    "storybook": (("storybook", "fairy"), "#87b5e5 #fbe8c8 #9ccc65 #c0504d #3b2f2f #fdf6e3"),
    "cinematic": (("cinematic", "film"), "#1f4e79 #f2b880 #4b5d3a #d9822b #141414 #ece4d8"),
}


@lru_cache(maxsize=64)
def style_palette(style: str) -> tuple[str, Palette]:
    """The style's table name and palette, matched by keyword in that order ("film noir" is
    noir); unknown styles get a palette derived from a hash of their text."""
    text = style.lower().strip()
    for name, (words, codes) in _STYLES.items():
        if any(word in text for word in words):
            return name, Palette(*(_hex(code) for code in codes.split()))
    hue = _rng("style", text).random()
    tones = [(0, 0.5, 0.75), (0.08, 0.25, 0.95), (0.33, 0.45, 0.6), (0.5, 0.55, 0.7)]
    tones += [(0, 0.4, 0.15), (0, 0.06, 0.96)]  # sky, horizon, ground, detail; ink, backdrop
    return text or "plain", Palette(*(_hsv(hue + dh, s, v) for dh, s, v in tones))


def _words(spec: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``"key: w1 w2; key2: w3"`` as ((key, (w1, w2)), (key2, (w3,)))."""
    pairs = (part.split(":") for part in spec.split(";"))
    return tuple((key.strip(), tuple(words.split())) for key, words in pairs)


_TIMES = _words(
    "night: night midnight moon stars; dusk: dusk sunset evening twilight;"
    "dawn: dawn sunrise morning daybreak"
)
_MOTIFS = _words(
    "room: room kitchen house office hall interior inside library cafe shop studio attic cabin"
    " classroom apartment; sea: sea ocean beach harbo lake river coast shore lighthouse bay port"
    " island pier; forest: forest wood jungle grove park garden; city: city street town alley"
    " rooftop market village downtown; mountain: mountain peak valley snow cliff glacier"
    "; desert: desert dune sand canyon"
)
#: Time of day -> (sky colour, its weight, horizon colour, its weight, ground darkening).
_TINTS: dict[str, tuple[RGB, float, RGB, float, float]] = {
    "night": ((10, 14, 40), 0.8, (40, 44, 90), 0.7, 0.55),
    "dusk": ((80, 50, 120), 0.5, (250, 140, 80), 0.6, 0.25),
    "dawn": ((150, 170, 225), 0.3, (255, 190, 160), 0.5, 0.1),
}
SAND = (225, 190, 130)


def _has(text: str, *words: str) -> bool:
    """Whether a word of ``text`` starts with one of ``words``."""
    return any(re.search(rf"\b{word}", text) for word in words)


def _find(text: str, table: Sequence[tuple[str, Sequence[str]]], default: str) -> str:
    """The first key of ``table`` with a word that starts a word of ``text``."""
    return next((key for key, words in table if _has(text, *words)), default)


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    mask = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def scene_setting(scene: str) -> tuple[str, str]:
    """The time of day (night, dusk, dawn or day) and the motif (room, sea, forest, city,
    mountain, desert or hills) that a scene's text asks for, by words such as "night" or
    "harbour" (matched at the start of words: a lighthouse is by the sea, not a room)."""
    text = scene.lower()
    return _find(text, _TIMES, "day"), _find(text, _MOTIFS, "hills")


@lru_cache(maxsize=32)
def _background(style: str, scene: str, size: tuple[int, int]) -> Image.Image:
    """The scene's background, a function of style, scene text and size only: sky tinted by
    the time of day, then a motif picked by location words. Shared: copy, never mutate."""
    w, h = size
    _, pal = style_palette(style)
    when, motif = scene_setting(scene)
    sky, horizon, ground = pal.sky, pal.horizon, pal.ground
    if when in _TINTS:
        sky_to, sky_t, hor_to, hor_t, dark = _TINTS[when]
        sky, horizon = _mix(sky, sky_to, sky_t), _mix(horizon, hor_to, hor_t)
        ground = _mix(ground, (0, 0, 0), dark)
    detail = _mix(pal.detail, (0, 0, 0), 0.5 if when == "night" else 0.0)
    rng = _rng("scene", style, scene, w, h)
    hy = int(h * rng.uniform(0.55, 0.64))
    img = _gradient(size, sky, horizon)
    d = ImageDraw.Draw(img)
    if motif == "room":
        wall = _mix(_mix(pal.backdrop, pal.detail, 0.35), (0, 0, 0), 0.6 if when == "night" else 0)
        d.rectangle((0, 0, w, hy), fill=wall)
        x0, y0, x1, y1 = (int(w * rng.uniform(0.15, 0.6)), h // 8, 0, int(h * 0.42))
        x1 = x0 + w // 4
        img.paste(_gradient((x1 - x0, y1 - y0), sky, horizon), (x0, y0))
        d.rectangle((x0, y0, x1, y1), outline=pal.ink, width=max(2, w // 160))
        d.line((x0, (y0 + y1) // 2, x1, (y0 + y1) // 2), fill=pal.ink, width=max(1, w // 320))
        d.rectangle((w * 0.78, h * 0.18, w * 0.88, h * 0.33), fill=detail, outline=pal.ink)
        d.rectangle((0, hy, w, h), fill=_mix(pal.ground, pal.ink, 0.3))
        d.rectangle((0, hy, w, hy + max(3, h // 60)), fill=pal.ink)
        return img
    sx, sy, r = w * rng.uniform(0.1, 0.9), hy * rng.uniform(0.2, 0.6), max(6, h // 14)
    if when == "night":
        for _ in range(40):
            star_x, star_y = rng.randrange(w), rng.randrange(max(1, hy))
            d.point([(star_x, star_y), (star_x + 1, star_y)], fill=(235, 235, 250))
    sun = {"night": (240, 236, 210), "day": (255, 236, 150)}.get(when, (255, 150, 60))
    d.ellipse((sx - r, sy - r, sx + r, sy + r), fill=sun)
    for _ in range(0 if when == "night" else rng.randint(2, 4)):
        cx, cy, cw = w * rng.random(), hy * rng.uniform(0.1, 0.5), w * rng.uniform(0.1, 0.2)
        d.ellipse((cx - cw, cy - cw / 6, cx + cw, cy + cw / 6), fill=_mix(horizon, (255,) * 3, 0.6))
    for k in range(max(6, w // 40) if motif in ("forest", "city") else 4):
        x, tall = w * rng.uniform(-0.1, 1.1), hy * rng.uniform(0.3, 0.75)
        shade = _mix(detail, pal.ink, rng.uniform(0.1, 0.5))
        if motif == "mountain":
            d.polygon([(x - tall, hy), (x, hy - tall), (x + tall, hy)], fill=shade)
            cap = [
                (x - tall / 4, hy - tall * 0.75),
                (x, hy - tall),
                (x + tall / 4, hy - tall * 0.75),
            ]
            d.polygon(cap, fill=(245, 245, 250))
        elif motif == "forest":
            d.rectangle((x - tall * 0.04, hy - tall * 0.3, x + tall * 0.04, hy), fill=(90, 60, 40))
            tree = [
                (x - tall * 0.3, hy - tall * 0.2),
                (x, hy - tall),
                (x + tall * 0.3, hy - tall * 0.2),
            ]
            d.polygon(tree, fill=_mix(shade, (20, 70, 30), 0.5))
        elif motif == "city":
            bw = w * rng.uniform(0.05, 0.1)
            d.rectangle((x, hy - tall, x + bw, hy), fill=shade)
            lit = (255, 214, 102) if when in ("night", "dusk") else _mix(sky, pal.ink, 0.3)
            for wy in range(int(hy - tall + 6), hy - 8, max(8, h // 30)):
                for wx in range(int(x + 4), int(x + bw - 6), max(8, w // 60)):
                    if rng.random() < 0.6:
                        d.rectangle((wx, wy, wx + 3, wy + 4), fill=lit)
        elif motif in ("hills", "desert"):
            tone = _mix(ground if motif == "hills" else SAND, detail, 0.1 + 0.12 * k)
            d.ellipse((x - w * 0.4, hy - tall * 0.25, x + w * 0.4, hy + h * 0.2), fill=tone)
    if motif == "sea":
        water = _mix(sky, (20, 60, 110), 0.5)
        d.rectangle((0, hy, w, h), fill=water)
        for y in range(hy + 6, int(h * 0.85), max(6, h // 24)):
            for x in range(-rng.randrange(40), w, 40):
                d.arc((x, y, x + 20, y + 8), 200, 340, fill=_mix(water, (255,) * 3, 0.4))
        d.rectangle((0, int(h * 0.85), w, h), fill=_mix(SAND, ground, 0.3))
    else:
        d.rectangle((0, hy, w, h), fill=_mix(SAND, ground, 0.2) if motif == "desert" else ground)
    return img


@dataclass(frozen=True, slots=True)
class CharacterLook:
    """How a character is drawn; a pure function of name and features."""

    skin: RGB
    hair: RGB
    top: RGB
    bottom: RGB
    shoes: RGB
    accent: RGB
    height: float = 0.9
    long_hair: bool = False
    hat: bool = False
    glasses: bool = False
    beard: bool = False
    skirt: bool = False
    cape: bool = False


_SKINS = ("#f5d0b5", "#e8b894", "#c98e64", "#a26b45", "#7a4b2e", "#f1c7a6")
_HAIRS = ("#1f1a17", "#4a2f1c", "#7b4a24", "#c8a060", "#a8402a", "#8c8c8c")
_COLOURS = dict(
    re.findall(
        r"(\w+)=(#\w+)",
        "red=#c0392b orange=#e67e22 yellow=#f1c40f green=#2e8b57 blue=#2e5fb8 purple=#7d3c98"
        " pink=#e88aa8 brown=#6b4226 black=#1c1c1c white=#f2f2f2 grey=#8a8a8a gray=#8a8a8a"
        " blonde=#e2c275 blond=#e2c275 golden=#d4a437 silver=#c0c0c8 auburn=#8d3b22"
        " teal=#1f8a8a navy=#1f2a5a",
    )
)
_SKIN_TONES = {"pale": 0, "fair": 5, "olive": 2, "tan": 2, "tanned": 2, "brown": 3, "dark": 4}
_PARTS = {
    **dict.fromkeys(("skin", "skinned"), "skin"),
    **dict.fromkeys(("hair", "haired", "beard", "bearded"), "hair"),
    **dict.fromkeys(("trousers", "pants", "jeans", "skirt"), "bottom"),
    **dict.fromkeys(("boots", "shoes"), "shoes"),
    **dict.fromkeys(("cloak", "cape", "scarf", "neckerchief", "bandana", "hat"), "accent"),
    **dict.fromkeys(re.findall(r"\w+", "coat jacket shirt dress robe suit sweater tunic"), "top"),
}
#: "red coat", "silver-haired", "mustard-yellow hooded cloak" (one word may come between).
_COLOUR_RE = re.compile(rf"(?=\b([a-z]+)[- ](?:[a-z]+ )?({'|'.join(_PARTS)})\b)")


@lru_cache(maxsize=256)
def character_look(name: str, features: str = "") -> CharacterLook:
    """The character's colours and traits from name and features only (never from an image):
    colour words before a garment ("red coat", "silver-haired") are honoured; the rest comes
    from a sha256 of the normalised name and features, so it is the same in every image."""
    feats = " ".join(features.lower().split())
    rng = _rng("character", " ".join(name.lower().split()), feats)
    look = {
        "skin": _hex(rng.choice(_SKINS)),
        "hair": _hex(rng.choice(_HAIRS)),
        "top": _hsv(rng.random(), rng.uniform(0.45, 0.8), rng.uniform(0.5, 0.85)),
        "bottom": _hsv(rng.random(), rng.uniform(0.25, 0.6), rng.uniform(0.25, 0.5)),
        "shoes": _hsv(rng.random(), 0.3, 0.22),
        "accent": _hsv(rng.random(), 0.7, 0.9),
    }
    for colour, part in _COLOUR_RE.findall(feats):
        if _PARTS[part] == "skin" and colour in _SKIN_TONES:
            look["skin"] = _hex(_SKINS[_SKIN_TONES[colour]])
        elif _PARTS[part] != "skin" and colour in _COLOURS:
            look[_PARTS[part]] = _hex(_COLOURS[colour])
    if _has(feats, "bald", "shaved head", "shaven head"):
        look["hair"] = look["skin"]
    small = _has(feats, "short", "child", "kid", "small", "little", "boy", "girl")
    return CharacterLook(
        **look,
        height=1.0 if _has(feats, "tall", "giant") else 0.78 if small else 0.9,
        long_hair=_has(feats, "long hair", "long-haired", "braid", "ponytail"),
        hat=_has(feats, "hat", "cap", "helmet"),
        glasses=_has(feats, "glasses", "spectacles"),
        beard=_has(feats, "beard"),
        skirt=_has(feats, "dress", "skirt", "gown"),
        cape=_has(feats, "cape", "cloak"),
    )


def _draw_figure(
    d: ImageDraw.ImageDraw,
    look: CharacterLook,
    view: str,
    cx: float,
    top: float,
    u: float,
    ink: RGB,
) -> None:
    """A figure ``u`` pixels tall, head at ``top``, facing front, side (right) or back."""

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return cx + x0 * u, top + y0 * u, cx + x1 * u, top + y1 * u

    def poly(points: Sequence[tuple[float, float]], fill: RGB) -> None:
        d.polygon([(cx + x * u, top + y * u) for x, y in points], fill=fill)

    side, back, half = view == "side", view == "back", 0.08 if view == "side" else 0.13
    line = max(1, round(u / 160))

    def cape_and_hair() -> None:  # behind the body, or over it when seen from the back
        if look.cape:
            poly(
                [(-half, 0.17), (half, 0.17), (half + 0.08, 0.8), (-half - 0.08, 0.8)], look.accent
            )
        if look.long_hair:
            d.rectangle(box(-0.1 if side else -0.09, 0.06, 0 if side else 0.09, 0.3), look.hair)

    if not back:
        cape_and_hair()
    for x, dx in ((-0.03, -0.04), (0.03, 0.04)) if side else ((-0.055, 0.0), (0.055, 0.0)):
        leg = [(x - 0.035, 0.5), (x + 0.035, 0.5), (x + dx + 0.035, 0.93), (x + dx - 0.035, 0.93)]
        poly(leg, look.bottom)
        toe = x + dx + (0.02 if side else 0.0)
        d.ellipse(box(toe - 0.045, 0.91, toe + 0.045, 0.97), fill=look.shoes)
    if look.skirt:
        poly([(-half, 0.45), (half, 0.45), (half + 0.07, 0.72), (-half - 0.07, 0.72)], look.top)
    for x in (-0.03,) if side else (-0.195, 0.135):
        arm = box(x, 0.19, x + 0.062, 0.5)
        if side:  # the near arm is drawn over the body
            d.rounded_rectangle(box(-half, 0.17, half, 0.53), 0.04 * u, look.top, ink, line)
        d.rounded_rectangle(arm, 0.03 * u, look.top, ink if side else None, line)
        d.ellipse(box(x, 0.48, x + 0.062, 0.54), fill=look.skin)
    if not side:
        d.rounded_rectangle(box(-half, 0.17, half, 0.53), 0.04 * u, look.top, ink, line)
    d.rectangle(box(-half + 0.01, 0.44, half - 0.01, 0.47), fill=look.accent)
    if back:
        cape_and_hair()
    d.rectangle(box(-0.025, 0.14, 0.025, 0.18), fill=look.skin)
    d.ellipse(box(-0.075, 0.01, 0.075, 0.16), look.hair if back else look.skin, ink, line)
    if side:
        d.pieslice(box(-0.082, 0.0, 0.082, 0.15), 100, 300, fill=look.hair)
        poly([(0.07, 0.09), (0.095, 0.115), (0.07, 0.12)], look.skin)
    elif not back:
        d.chord(box(-0.082, 0.0, 0.082, 0.15), 180, 360, fill=look.hair)
        d.arc(box(-0.025, 0.1, 0.025, 0.135), 20, 160, fill=ink, width=line)
    if look.beard and not back:
        d.chord(box(-0.01 if side else -0.07, 0.07, 0.07, 0.165), 10, 170, fill=look.hair)
    for x in () if back else (0.045,) if side else (-0.03, 0.03):
        d.ellipse(box(x - 0.011, 0.085, x + 0.011, 0.105), fill=ink)
        if look.glasses:
            d.ellipse(box(x - 0.024, 0.072, x + 0.024, 0.118), outline=ink, width=line)
    if look.hat:
        d.rectangle(box(-0.11, 0.03, 0.11, 0.05), look.accent, ink)
        d.rectangle(box(-0.065, -0.05, 0.065, 0.04), look.accent, ink)


def _finish(img: Image.Image, style_name: str) -> Image.Image:
    """The style's cheap post-processing (greyscale, pixels, wash, pencil, ink, pastel)."""
    if style_name == "noir":
        return ImageOps.autocontrast(img.convert("L"), cutoff=1).convert("RGB")
    if style_name == "pixel art":
        w, h = img.size
        f = max(2, w // 120)
        return img.resize((max(1, w // f), max(1, h // f)), Image.Resampling.BOX).resize(
            (w, h), Image.Resampling.NEAREST
        )
    if style_name == "watercolor":
        return ImageOps.posterize(img.filter(ImageFilter.BoxBlur(1.5)), 5)
    if style_name == "sketch":
        edges = ImageOps.invert(img.convert("L").filter(ImageFilter.FIND_EDGES))
        paper = Image.new("RGB", img.size, (244, 239, 228))
        return ImageChops.multiply(paper, ImageOps.autocontrast(edges).convert("RGB"))
    if style_name in ("comic", "anime"):
        return ImageOps.posterize(img, 3 if style_name == "comic" else 4)
    if style_name == "pastel":
        return Image.blend(img, Image.new("RGB", img.size, (255, 255, 255)), 0.2)
    return img


@lru_cache(maxsize=16)
def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _label_height(height: int) -> int:
    """Height of the name strip under a portrait (cut off when the portrait is pasted)."""
    return max(14, height // 10)


def _fit_text(d: ImageDraw.ImageDraw, text: str, font: Font, width: float) -> str:
    if d.textlength(text, font=font) <= width:
        return text
    while text and d.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "..."


@lru_cache(maxsize=64)
def _cutout(path: str, mtime_ns: int) -> tuple[Image.Image, Image.Image, float, float, int] | None:
    """A portrait's figure (above its name strip) and mask, the figure's left edge from the
    image centre, its top above the strip and the strip's top; None if unreadable or blank.

    The mask is the alpha channel where it is used (``FIGURE_ALPHA`` marks our figures,
    lower values are transparency), else every pixel unlike the top-left (backdrop) one.
    The images are shared: never mutate them."""
    try:
        with Image.open(path) as opened:
            rgba = opened.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    region = rgba.height - _label_height(rgba.height)
    rgba = rgba.crop((0, 0, rgba.width, region))
    img, alpha = rgba.convert("RGB"), rgba.getchannel("A")
    low = next(value for value, count in enumerate(alpha.histogram()) if count)
    if low == FIGURE_ALPHA - 1:
        mask = alpha.point(lambda v: 255 if v == FIGURE_ALPHA else 0)
    elif low < FIGURE_ALPHA - 1:
        mask = alpha
    else:
        diff = ImageChops.difference(img, Image.new("RGB", img.size, img.getpixel((0, 0))))
        mask = ImageChops.lighter(ImageChops.lighter(*diff.split()[:2]), diff.getchannel("B"))
        mask = mask.point(lambda v: 255 if v > 24 else 0)
    bbox = mask.getbbox()
    if bbox is None:
        return None
    return img.crop(bbox), mask.crop(bbox), bbox[0] - img.width / 2, region - bbox[1], region


def _load_cutout(path: PathLike) -> tuple[Image.Image, Image.Image, float, float, int] | None:
    try:
        return _cutout(str(path), os.stat(path).st_mtime_ns)
    except OSError:
        return None


def _draw_props(
    d: ImageDraw.ImageDraw,
    rng: random.Random,
    text: str,
    size: tuple[int, int],
    pal: Palette,
    shift: float,
) -> None:
    """Props seeded by ``rng``: a few stones, and fire, a lamp, a boat, a tree or birds when
    the text names them. ``shift`` moves them all (parallax between first and last)."""
    w, h = size
    for _ in range(rng.randint(1, 3)):
        x, y, r = w * rng.random() + shift, h * rng.uniform(0.8, 0.95), h * rng.uniform(0.03, 0.07)
        stone = _mix(pal.ground, pal.ink, rng.uniform(0.25, 0.45))
        d.ellipse((x - r * 1.4, y - r, x + r * 1.4, y + r * 0.4), fill=stone)
    r, y = h * 0.06, h * rng.uniform(0.78, 0.9)
    xs = [w * rng.uniform(0.1, 0.9) + shift for _ in range(4)]

    def shape(x: float, points: Sequence[tuple[float, float]], fill: RGB) -> None:
        d.polygon([(x + px * r, y + py * r) for px, py in points], fill=fill)

    if any(k in text for k in ("fire", "candle", "torch")):
        shape(xs[0], [(-1, 0), (0, -2.5), (1, 0)], (240, 110, 30))
        shape(xs[0], [(-0.5, 0), (0, -1.4), (0.5, 0)], (255, 220, 80))
    if any(k in text for k in ("lamp", "lantern", "streetlight")):
        d.ellipse((xs[1] - 1.5 * r, y - 6.5 * r, xs[1] + 1.5 * r, y - 3.5 * r), (255, 226, 140))
        d.rectangle((xs[1] - r / 6, y - 5 * r, xs[1] + r / 6, y), fill=pal.ink)
    if any(k in text for k in ("boat", "ship")):
        shape(xs[2], [(-3, -2), (3, -2), (2, -1), (-2, -1)], (120, 70, 40))
        shape(xs[2], [(0, -6), (0, -2.1), (2, -2.1)], (245, 240, 225))
    if "tree" in text:
        d.rectangle((xs[3] - r / 3, y - 3 * r, xs[3] + r / 3, y), fill=(95, 60, 35))
        leaves = _mix(pal.detail, (30, 110, 50), 0.6)
        d.ellipse((xs[3] - 2 * r, y - 6 * r, xs[3] + 2 * r, y - 2.5 * r), fill=leaves)
    for _ in range(rng.randint(3, 6) if "bird" in text else 0):
        bx, by = w * rng.random() + shift * 2, h * rng.uniform(0.08, 0.35)
        d.line([(bx - 8, by - 4), (bx, by), (bx + 8, by - 4)], fill=pal.ink, width=2)


class ProceduralImageGenerator:
    """An :class:`~vimax_nb.providers.base.ImageGenerator` that draws instead of asking a model.

    Guarantees: the same prompt, reference images and size give the same pixels (and
    PNG bytes); a character looks the same in every portrait and frame; frames of one
    ``scene`` share their background; first and last frames of a shot differ; missing
    or unreadable references are skipped. Thread-safe. Invalid sizes raise
    :class:`ProviderError` (not retryable).
    """

    name = PROVIDER

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
    ) -> ImageOutput:
        """Draw the portrait or frame described by ``prompt`` at ``size`` (``WIDTHxHEIGHT``)."""
        try:
            width, height = parse_size(size)
        except ValueError as exc:
            raise ProviderError(f"procedural image: {exc}", provider=PROVIDER) from None
        if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
            raise ProviderError(
                f"procedural image: each side must be 16 to {MAX_SIDE} pixels (got {size!r})",
                provider=PROVIDER,
            )
        sections = parse_prompt(prompt)
        if sections.get("view") or sections.get("subject", "").lower().startswith("portrait"):
            return ImageOutput(self._portrait(sections, (width, height)))
        return ImageOutput(self._frame(sections, list(reference_image_paths), (width, height)))

    def _portrait(self, s: dict[str, str], size: tuple[int, int]) -> Image.Image:
        w, h = size
        style_name, pal = style_palette(s.get("style", ""))
        subject = re.sub(r"(?i)^\s*portrait of\s*", "", s.get("subject", ""))
        name = s.get("character") or subject.strip() or "someone"
        view_text = s.get("view", "").lower().replace("profile", "side")
        view = next((v for v in ("back", "side") if v in view_text), "front")
        look = character_look(name, s.get("features", ""))
        img = Image.new("RGB", size, pal.backdrop)
        d = ImageDraw.Draw(img)
        label = _label_height(h)
        feet = h - label - max(2, h // 40)
        u = (feet - h * 0.04) * look.height / 0.97
        d.ellipse(
            (w / 2 - 0.15 * u, feet - 0.02 * u, w / 2 + 0.15 * u, feet + 0.012 * u),
            fill=_mix(pal.backdrop, pal.ink, 0.15),
        )
        _draw_figure(d, look, view, w / 2, feet - 0.97 * u, u, pal.ink)
        silhouette = Image.new("RGB", size)  # the figure in white: the cut-out mask
        white = (255, 255, 255)
        figure = replace(look, skin=white, hair=white, top=white, bottom=white, shoes=white)
        figure = replace(figure, accent=white)
        _draw_figure(ImageDraw.Draw(silhouette), figure, view, w / 2, feet - 0.97 * u, u, white)
        img = _finish(img, style_name)
        d = ImageDraw.Draw(img)
        font = _font(max(10, int(label * 0.7)))
        d.text(
            (w / 2, h - label / 2),
            _fit_text(d, name, font, w - 8),
            font=font,
            anchor="mm",
            fill=(20, 20, 20) if sum(pal.backdrop) > 380 else (245, 245, 245),
        )
        img.putalpha(silhouette.convert("L").point(lambda v: 255 if v else FIGURE_ALPHA - 1))
        return img

    def _frame(self, s: dict[str, str], refs: list[PathLike], size: tuple[int, int]) -> Image.Image:
        w, h = size
        style = s.get("style", "")
        style_name, pal = style_palette(style)
        description = s.get("description") or s.get("text") or ""
        scene = s.get("scene") or description
        last = "last" in s.get("frame", "").lower()
        img = _background(style, scene, size).copy()
        names = [n.strip() for n in s.get("characters", "").split(",") if n.strip()]
        shot, camera = s.get("shot", ""), s.get("camera", "").lower()
        # The layout depends on the shot, not on the frame's description, so that the
        # first and last frames agree; the last one moves and scales it with the camera.
        layout = _rng("frame", style, scene, shot, camera, size)
        pan = -1.0 if "pan right" in camera else 1.0 if "pan left" in camera else 0.0
        direction = pan or layout.choice((-1.0, 1.0))
        growth = 0.88 if any(k in camera for k in ("zoom out", "dolly out", "pull")) else 1.15
        framing = f"{camera} {description}".lower()
        close = _has(framing, "close up", "close-up", "closeup", "close shot", "extreme close")
        wide = _has(framing, "wide", "establishing", "long shot", "aerial", "full shot")
        reach = 1.25 if close else 0.42 if wide else 0.8 if _has(framing, "medium") else 0.64
        reach *= growth if last else 1.0
        ground = h * max(0.95, reach + 0.05)  # heads stay in the picture
        props = _rng("props", scene, shot, description, size)
        shift = -direction * 0.05 * w * last
        _draw_props(ImageDraw.Draw(img), props, description.lower(), size, pal, shift)
        count = len(names) or len(refs)
        for i in range(count):
            jitter = _rng("place", scene, shot, names[i] if i < len(names) else i).uniform(-1, 1)
            x = w * ((i + 1) / (count + 1) + 0.06 * jitter + direction * 0.09 * last)
            cut = _load_cutout(refs[i]) if i < len(refs) else None
            if cut is None:
                continue
            figure, mask, left, rise, region = cut
            scale = h * reach / region
            fw, fh = max(1, round(figure.width * scale)), max(1, round(figure.height * scale))
            at = (round(x + left * scale), round(ground - rise * scale))
            img.paste(
                figure.resize((fw, fh), Image.Resampling.BILINEAR),
                at,
                mask.resize((fw, fh), Image.Resampling.BILINEAR),
            )
        img = _finish(img, style_name)
        caption = s.get("caption") or description
        if caption:
            band = max(16, h // 8)
            strip = img.crop((0, h - band, w, h))
            img.paste(
                Image.blend(strip, Image.new("RGB", strip.size, (0, 0, 0)), 0.55), (0, h - band)
            )
            d = ImageDraw.Draw(img)
            font = _font(max(10, int(band * 0.45)))
            d.text(
                (w / 2, h - band / 2),
                _fit_text(d, caption, font, w * 0.94),
                font=font,
                anchor="mm",
                fill=(250, 250, 250),
            )
        return img
