"""Where a frame happens and its background: :func:`setting` reads a scene's text (inside
or outside, a cave, the time of day, the weather), ``_background`` paints the sky or the
room, the ground or the sea, and the places the scene names, as drawables."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw

from . import drawables as dw
from .palettes import (
    _TINTS,
    RGB,
    SAND,
    Palette,
    _gradient,
    _mix,
    _rng,
    scene_setting,
    style_palette,
)

_INT = re.compile(r"\b(int\.|int\b|interior|inside|indoors)")
_EXT = re.compile(r"\b(ext\.|ext\b|exterior|outside|outdoors|open air)")
_CAVE = re.compile(r"\b(caves?|cavern|grotto|tunnel|mine|underground)\b")
WEATHER = ("rain", "snow", "fog")


@dataclass(frozen=True, slots=True)
class Setting:
    """A scene's ``inside`` ("room", "cave" or "" outdoors), time of day (``when``:
    night, dusk, dawn or day), ``motif`` (see :func:`scene_setting`) and ``weather``."""

    inside: str
    when: str
    motif: str
    weather: tuple[str, ...]

    @property
    def where(self) -> str:
        return "interior" if self.inside else "exterior"


@lru_cache(maxsize=256)
def setting(scene: str) -> Setting:
    """Read a scene's text: ``INT.``/``EXT.`` (or inside/outside) win; else a cave is a cave
    inside, rooms, kitchens, houses... are inside and the rest is outside."""
    text = scene.lower()
    when, motif = scene_setting(text)
    cave = bool(_CAVE.search(text))
    mi, me = _INT.search(text), _EXT.search(text)
    if mi and (me is None or mi.start() < me.start()):
        inside = "cave" if cave else "room"
    elif me:
        inside = ""
    else:
        inside = "cave" if cave else "room" if motif == "room" else ""
    weather = tuple(w for w in dw.find(text) if w in WEATHER)
    return Setting(inside, when, motif, weather)


def horizon(scene: str, style: str, size: tuple[int, int]) -> int:
    """The y of the horizon (or of the floor's back edge) of the scene's background."""
    return int(size[1] * _rng("scene", style, scene, *size).uniform(0.55, 0.64))


def sky_tones(pal: Palette, s: Setting) -> tuple[RGB, RGB, RGB]:
    """Sky (top), horizon and ground colours for the time of day and weather."""
    sky, hor, ground = pal.sky, pal.horizon, pal.ground
    if s.when in _TINTS:
        sky_to, sky_t, hor_to, hor_t, dark = _TINTS[s.when]
        sky, hor = _mix(sky, sky_to, sky_t), _mix(hor, hor_to, hor_t)
        ground = _mix(ground, (0, 0, 0), dark)
    if {"rain", "fog"} & set(s.weather):
        grey = (120, 125, 135) if "rain" in s.weather else (200, 204, 210)
        sky, hor = _mix(sky, grey, 0.6), _mix(hor, grey, 0.6)
    if "snow" in s.weather:
        ground = _mix(ground, (240, 244, 250), 0.8)
    return sky, hor, ground


def place(
    name: str,
    d: ImageDraw.ImageDraw,
    rng: random.Random,
    *,
    area: tuple[float, float, float, float],
    base: float,
    scale: float,
    pal: Palette,
    s: Setting,
    sky: RGB,
    line: int,
    shift: float = 0.0,
) -> None:
    """Draw the drawable ``name`` standing on ``base`` at a seeded x in ``area``'s width
    (``scale`` is the picture's height), or filling ``area`` for overlays and grounds."""
    item = dw.DRAWABLES[name]
    night = s.when == "night" or bool(s.inside and s.when == "dusk")
    tones = dw.tones(name, sky=sky, ink=pal.ink if line else None, night=night, tint=pal.detail)
    x0, y0, x1, y1 = area
    if item.where in ("overlay", "ground"):
        dw.draw(name, dw.Pen(d, area, line, tones.ink), tones)
        return
    h = min(item.size * scale, (base - y0) * 0.95) if item.where != "sky" else item.size * scale
    w = h * item.aspect
    x = x0 + (x1 - x0 - min(w, x1 - x0)) * rng.random() + shift
    top = base - h if item.where != "sky" else y0 + (y1 - y0 - h) * rng.random()
    dw.draw(name, dw.Pen(d, (x, top, x + w, top + h), line, tones.ink, rng.random() < 0.5), tones)


# 8 scenes: the frames of a scene are painted together; at 3840x2160 each is 25 MB
@lru_cache(maxsize=8)
def _background(
    style: str, scene: str, size: tuple[int, int]
) -> tuple[Image.Image, tuple[str, ...]]:
    """The scene's background and the drawables it placed: a function of style, scene text
    and size only (every frame of a scene shares it). Shared: copy, never mutate."""
    w, h = size
    style_name, pal = style_palette(style)
    s = setting(scene)
    rng = _rng("scene", style, scene, w, h)
    hy = horizon(scene, style, size)
    sky, hor, ground = sky_tones(pal, s)
    line = max(1, w // (160 if style_name in ("anime", "comic") else 400))
    named = dw.find(scene)
    placed: list[str] = []

    def put(name: str, area: tuple[float, float, float, float], base: float, scale: float) -> None:
        place(name, d, rng, area=area, base=base, scale=scale, pal=pal, s=s, sky=sky, line=line)
        placed.append(name)

    img = _gradient(size, sky, hor)
    d = ImageDraw.Draw(img)
    outdoors = [n for n in named if dw.DRAWABLES[n].where in ("far", "water", "ground")]
    if s.inside == "cave":
        rock = _mix(pal.ground, (40, 32, 26), 0.7)
        img.paste(_gradient(size, _mix(rock, (0, 0, 0), 0.5), rock))
        d.ellipse(
            (w * 0.3, h * 0.12, w * 0.7, hy * 1.1), fill=sky if s.when != "night" else (15, 18, 40)
        )
        for k in range(9):  # stalactites and the cave's walls
            x = w * k / 8
            d.polygon(
                [(x - w * 0.05, 0), (x + w * 0.05, 0), (x, h * rng.uniform(0.1, 0.3))], fill=rock
            )
        d.rectangle((0, hy, w, h), fill=_mix(rock, pal.ground, 0.3))
        d.polygon([(0, 0), (w * 0.25, 0), (w * 0.2, hy), (0, h)], fill=_mix(rock, (0, 0, 0), 0.3))
        d.polygon([(w, 0), (w * 0.75, 0), (w * 0.8, hy), (w, h)], fill=_mix(rock, (0, 0, 0), 0.3))
        placed.append("cave")
        for name in (n for n in named if dw.DRAWABLES[n].where in ("near", "creature")):
            put(name, (w * 0.1, 0, w * 0.9, h), h * 0.9, h)
    elif s.inside:
        dim = 0.55 if s.when == "night" else 0.25 if s.when == "dusk" else 0.0
        wall = _mix(_mix(pal.backdrop, pal.detail, 0.35), (0, 0, 0), dim)
        d.rectangle((0, 0, w, hy), fill=wall)
        d.rectangle((0, hy, w, h), fill=_mix(_mix(pal.ground, (120, 80, 50), 0.5), (0, 0, 0), dim))
        d.rectangle((0, hy, w, hy + max(3, h // 60)), fill=pal.ink)
        wx = w * rng.uniform(0.3, 0.55)
        view = (wx, h * 0.1, wx + w * 0.28, h * 0.42)
        d.rectangle(view, fill=(20, 24, 55) if s.when == "night" else sky)
        vd = ImageDraw.Draw(img)
        for name in outdoors:  # the places named are seen through the window
            place(name, vd, rng, area=view, base=view[3], scale=view[3] - view[1], pal=pal, s=s,
                  sky=sky, line=0)  # fmt: skip
            placed.append(name)
        put("window", view, view[3], view[3] - view[1])
        put("door", (w * 0.04, 0, w * 0.2, hy), hy, h)
        for name in (n for n in named if dw.DRAWABLES[n].where == "wall" and n not in placed):
            put(name, (w * 0.75, h * 0.12, w * 0.95, h * 0.3), h * 0.3, h)
        if s.when in ("night", "dusk"):
            put("lamp", (w * 0.8, 0, w * 0.95, h), hy + h * 0.05, h)
        for name in (n for n in named if dw.DRAWABLES[n].where in ("near", "creature")):
            put(name, (w * 0.05, 0, w * 0.95, h), h * 0.92, h)
    else:
        if s.when == "night":
            put("star", (0, 0, w, hy), hy, h)
            put("moon", (w * 0.05, h * 0.04, w * 0.95, hy * 0.5), hy, h)
        elif not {"rain", "fog"} & set(s.weather):
            put(
                "sun",
                (w * 0.05, h * 0.04 + hy * (0.5 if s.when != "day" else 0), w * 0.95, hy * 0.7),
                hy,
                h,
            )
            for _ in range(rng.randint(1, 2)):
                put("cloud", (0, h * 0.03, w, hy * 0.45), hy, h)
        water = s.motif == "sea" or "sea" in named
        d.rectangle((0, hy, w, h), fill=_mix(SAND, ground, 0.2) if s.motif == "desert" else ground)
        if water:
            put("sea", (0, hy, w, h * 0.84), h, h)
            d.rectangle((0, int(h * 0.84), w, h), fill=_mix(SAND, ground, 0.3))
        for name in (n for n in named if dw.DRAWABLES[n].where == "ground" and n != "sea"):
            put(name, (0, hy, w, h), h, h)
        for name in (n for n in named if dw.DRAWABLES[n].where == "far"):
            put(name, (-w * 0.05, 0, w * 1.05, hy), hy + h * 0.03, h)
        for name in (n for n in named if dw.DRAWABLES[n].where == "water"):
            put(name, (0, 0, w, h), (hy + h * 0.8) / 2 if water else h * 0.9, h)
        for name in (n for n in named if dw.DRAWABLES[n].where == "sky" and n not in placed):
            put(name, (0, h * 0.04, w, hy * 0.6), hy, h)
        for name in (n for n in named if dw.DRAWABLES[n].where in ("near", "creature", "wall")):
            put(name, (w * 0.05, 0, w * 0.95, h), h * 0.92, h)
    for name in s.weather:
        if name not in placed:
            put(name, (0, 0, w, h), h, h)
    return img, tuple(placed)
