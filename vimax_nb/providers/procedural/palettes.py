"""Style palettes, scene settings and the backgrounds of procedural frames.

:func:`style_palette` turns a style's text into a :class:`Palette`, :func:`scene_setting`
reads the time of day and the motif a scene's text asks for (the background is painted by
:mod:`.scenery`). Also the small colour and seeding helpers (``_rng``,
``_mix``, ``_hsv``, ``_hex``, ``_has``) shared by the other drawing modules.
"""

from __future__ import annotations

import colorsys
import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image

RGB = tuple[int, int, int]


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
