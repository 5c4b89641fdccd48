"""Characters' looks and figure drawing for procedural portraits.

:func:`character_look` derives a :class:`CharacterLook` from a character's name and
features only, so every view of a character matches; ``_draw_figure`` draws it front,
side or back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import ImageDraw

from .palettes import RGB, _has, _hex, _hsv, _rng


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
