"""Drawables: props, places and creatures drawn with Pillow as what they are.

Each drawable is a small function that draws into a :class:`Pen` -- a box in which
``(0, 0)`` is the top-left and ``(1, 1)`` the bottom-right corner (the ground) -- with
:class:`Tones` (its main and second colour, an accent, the ink for outlines and the sky).
:data:`DRAWABLES` maps each name to its :class:`Drawable` (where it goes in a picture,
its aspect and size); :func:`lookup` and :func:`find` read names, synonyms and plurals
in a text by whole words (``"whales"``, ``"kitten"`` -> cat, ``"ocean"`` -> sea).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from PIL import ImageDraw

from .palettes import RGB, _hex, _mix

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Tones:
    """The colours a drawable is drawn with."""

    main: RGB
    second: RGB
    accent: RGB
    ink: RGB | None
    sky: RGB
    night: bool = False


@dataclass(frozen=True, slots=True)
class Pen:
    """Draws in a box with unit coordinates; ``flip`` mirrors it left to right."""

    d: ImageDraw.ImageDraw
    box: tuple[float, float, float, float]
    line: int = 1
    ink: RGB | None = None
    flip: bool = False

    def at(self, x: float, y: float) -> Point:
        x0, y0, x1, y1 = self.box
        return x0 + (x1 - x0) * (1 - x if self.flip else x), y0 + (y1 - y0) * y

    def _rect(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, ...]:
        (a, b), (c, e) = self.at(x0, y0), self.at(x1, y1)
        return min(a, c), min(b, e), max(a, c), max(b, e)

    def _edge(self, edge: bool) -> dict[str, object]:
        return {"outline": self.ink, "width": self.line} if edge and self.ink else {}

    def ell(self, x0: float, y0: float, x1: float, y1: float, fill: RGB, edge: bool = True) -> None:
        self.d.ellipse(self._rect(x0, y0, x1, y1), fill=fill, **self._edge(edge))  # type: ignore[arg-type]

    def rect(
        self, x0: float, y0: float, x1: float, y1: float, fill: RGB, edge: bool = True
    ) -> None:
        self.d.rectangle(self._rect(x0, y0, x1, y1), fill=fill, **self._edge(edge))  # type: ignore[arg-type]

    def poly(self, points: Sequence[Point], fill: RGB, edge: bool = True) -> None:
        self.d.polygon([self.at(x, y) for x, y in points], fill=fill, **self._edge(edge))  # type: ignore[arg-type]

    def lines(self, points: Sequence[Point], fill: RGB, width: float = 1.0) -> None:
        w = max(1, round(max(1.0, self.line) * width))
        self.d.line([self.at(x, y) for x, y in points], fill=fill, width=w)

    def sub(self, x0: float, y0: float, x1: float, y1: float, flip: bool = False) -> Pen:
        a, b, c, e = self._rect(x0, y0, x1, y1)
        return replace(self, box=(a, b, c, e), flip=self.flip != flip)


Draw = Callable[[Pen, Tones], None]


@dataclass(frozen=True, slots=True)
class Drawable:
    """A drawable: its function, where it goes (``sky``, ``far`` on the horizon, ``water``,
    ``near`` on the ground, ``wall`` inside, ``overlay``, ``creature``), its width over
    height, its height as a fraction of the picture's and its default colours."""

    name: str
    draw: Draw
    where: str
    aspect: float
    size: float
    main: RGB
    second: RGB


WHITE, BLACK, GLOW = (245, 245, 240), (25, 25, 30), (255, 225, 120)
_registry: dict[str, Drawable] = {}
_synonyms: dict[str, tuple[str, ...]] = {}


def _drawable(
    where: str, aspect: float, size: float, colours: str, also: str = ""
) -> Callable[[Draw], Draw]:
    """Register the decorated function under its name (and ``also``'s synonyms)."""

    def register(fn: Draw) -> Draw:
        name = fn.__name__.strip("_")
        main, second = (_hex(c) for c in colours.split())
        _registry[name] = Drawable(name, fn, where, aspect, size, main, second)
        for word in also.split():
            _synonyms[word] = (*_synonyms.get(word, ()), name)
        return fn

    return register


# ---------------------------------------------------------------- places and big things
@_drawable("far", 0.32, 0.62, "#f2efe8 #c0392b", "lighthouses beacon")
def lighthouse(p: Pen, t: Tones) -> None:
    if t.night:
        p.poly([(0.5, 0.1), (-2.5, -0.1), (-2.5, 0.35)], (255, 240, 170), edge=False)
    p.poly([(0.22, 1), (0.78, 1), (0.66, 0.2), (0.34, 0.2)], t.main)
    for y in (0.35, 0.62):
        p.poly([(0.31, y + 0.12), (0.69, y + 0.12), (0.67, y), (0.33, y)], t.second, edge=False)
    p.rect(0.3, 0.1, 0.7, 0.2, GLOW if t.night else (250, 230, 160))
    p.poly([(0.26, 0.1), (0.74, 0.1), (0.5, 0.0)], t.second)
    p.rect(0.44, 0.86, 0.56, 1, (90, 60, 40))


@_drawable("far", 1.1, 0.34, "#d9b38c #8e3b2e", "houses cottage cottages cabin hut home farmhouse")
def house(p: Pen, t: Tones) -> None:
    p.rect(0.1, 0.42, 0.9, 1, t.main)
    p.poly([(0.02, 0.45), (0.98, 0.45), (0.5, 0.0)], t.second)
    p.rect(0.42, 0.66, 0.58, 1, (95, 60, 40))
    for x in (0.18, 0.66):
        p.rect(x, 0.55, x + 0.16, 0.72, GLOW if t.night else _mix(t.sky, WHITE, 0.3))


@_drawable("far", 0.6, 0.45, "#2f7d3a #6b4226", "trees oak pine willow birch")
def tree(p: Pen, t: Tones) -> None:
    p.rect(0.42, 0.55, 0.58, 1, t.second)
    p.ell(0.05, 0.0, 0.95, 0.68, t.main)
    p.ell(0.25, 0.1, 0.6, 0.4, _mix(t.main, WHITE, 0.18), edge=False)


@_drawable("far", 3.0, 0.42, "#24663a #5a3a22", "forests woods wood jungle grove woodland")
def forest(p: Pen, t: Tones) -> None:
    for i, (x, h) in enumerate(
        ((0.0, 0.7), (0.16, 0.95), (0.33, 0.8), (0.5, 1), (0.68, 0.75), (0.82, 0.9))
    ):
        q = p.sub(x, 1 - h, x + 0.2, 1)
        shade = _mix(t.main, BLACK, 0.12 * (i % 3))
        q.rect(0.44, 0.75, 0.56, 1, t.second, edge=False)
        q.poly([(0.0, 0.8), (1.0, 0.8), (0.5, 0.0)], shade)


@_drawable(
    "far",
    3.0,
    0.5,
    "#5d6d7e #2c3e50",
    "cities town towns street streets downtown alley village buildings",
)
def city(p: Pen, t: Tones) -> None:
    for i, (x, h) in enumerate(
        ((0, 0.6), (0.13, 0.9), (0.27, 0.7), (0.4, 1), (0.55, 0.55), (0.68, 0.85), (0.83, 0.7))
    ):
        shade = _mix(t.main, t.second, (i % 3) / 3)
        p.rect(x, 1 - h, x + 0.12, 1, shade)
        lit = GLOW if t.night else _mix(t.sky, WHITE, 0.2)
        for k in range(int(h * 6)):
            p.rect(
                x + 0.03, 1 - h + 0.05 + k * 0.15, x + 0.09, 1 - h + 0.1 + k * 0.15, lit, edge=False
            )


@_drawable("far", 2.2, 0.55, "#6d6875 #f4f4f8", "mountains peak peaks cliff cliffs volcano")
def mountain(p: Pen, t: Tones) -> None:
    p.poly([(0.35, 1), (0.7, 0.3), (1.0, 1)], _mix(t.main, BLACK, 0.15))
    p.poly([(0.0, 1), (0.4, 0.0), (0.8, 1)], t.main)
    p.poly([(0.3, 0.25), (0.4, 0.0), (0.5, 0.25), (0.42, 0.2)], t.second, edge=False)


@_drawable("far", 3.5, 0.25, "#7fb069 #5c8a4a", "hills meadow meadows dune dunes field fields")
def hill(p: Pen, t: Tones) -> None:
    p.ell(0.35, 0.1, 1.15, 1.9, t.second, edge=False)
    p.ell(-0.1, 0.0, 0.7, 2.0, t.main, edge=False)


@_drawable("far", 1.4, 0.45, "#9e9e9e #6e6e6e", "castles palace fortress fort")
def castle(p: Pen, t: Tones) -> None:
    p.rect(0.15, 0.35, 0.85, 1, t.main)
    for x in (0.0, 0.75):
        p.rect(x, 0.1, x + 0.25, 1, t.second)
        p.poly([(x - 0.03, 0.12), (x + 0.28, 0.12), (x + 0.125, -0.1)], (140, 50, 50))
    for x in (0.25, 0.4, 0.55):
        p.rect(x, 0.28, x + 0.08, 0.36, t.main, edge=False)
    p.ell(0.4, 0.62, 0.6, 0.85, BLACK)
    p.rect(0.4, 0.74, 0.6, 1, BLACK)


@_drawable("far", 0.35, 0.55, "#a0938c #5b3f70", "towers spire turret")
def tower(p: Pen, t: Tones) -> None:
    p.rect(0.15, 0.25, 0.85, 1, t.main)
    p.poly([(0.05, 0.27), (0.95, 0.27), (0.5, 0.0)], t.second)
    p.rect(0.4, 0.4, 0.6, 0.52, GLOW if t.night else BLACK)


@_drawable("far", 1.0, 0.3, "#5a5048 #1c1814", "caves cavern grotto tunnel")
def cave(p: Pen, t: Tones) -> None:
    p.ell(0.0, 0.0, 1.0, 1.8, t.main)
    p.ell(0.28, 0.4, 0.72, 1.5, t.second, edge=False)


@_drawable("far", 2.4, 0.28, "#8d6e63 #5d4037", "bridges")
def bridge(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.3, 1.0, 0.45, t.main)
    for x in (0.05, 0.55):
        p.rect(x, 0.45, x + 0.4, 1, t.main)
        p.ell(x + 0.07, 0.55, x + 0.33, 1.4, t.sky, edge=False)
    p.lines([(0.0, 0.1), (1.0, 0.1)], t.second, 2)
    for x in (0.1, 0.3, 0.5, 0.7, 0.9):
        p.lines([(x, 0.1), (x, 0.3)], t.second, 2)


@_drawable("far", 3.0, 0.2, "#c0392b #34495e", "trains locomotive railway")
def train(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.3, 0.3, 0.85, t.second)
    p.rect(0.05, 0.0, 0.12, 0.3, t.second)
    for x in (0.33, 0.67):
        p.rect(x, 0.25, x + 0.31, 0.85, t.main)
        p.rect(x + 0.04, 0.35, x + 0.27, 0.55, GLOW if t.night else _mix(t.sky, WHITE, 0.3))
    for x in (0.05, 0.2, 0.38, 0.55, 0.72, 0.9):
        p.ell(x - 0.04, 0.75, x + 0.04, 1.0, BLACK)


@_drawable("far", 1.3, 0.25, "#e67e22 #8e5a2b", "tents camp")
def tent(p: Pen, t: Tones) -> None:
    p.poly([(0.0, 1), (1.0, 1), (0.5, 0.0)], t.main)
    p.poly([(0.38, 1), (0.62, 1), (0.5, 0.45)], t.second)


@_drawable("far", 2.0, 0.22, "#d7b377 #2e8b57", "islands isle")
def island(p: Pen, t: Tones) -> None:
    p.ell(0.0, 0.6, 1.0, 1.4, t.main)
    p.lines([(0.5, 0.7), (0.55, 0.05)], (110, 80, 50), 3)
    for dx in (-0.2, 0.2):
        p.poly([(0.55, 0.05), (0.55 + dx, 0.25), (0.55 + dx * 0.5, 0.1)], t.second)


@_drawable("water", 2.5, 0.16, "#7b5a3a #5a4030", "piers dock docks jetty wharf quay")
def pier(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.0, 1.0, 0.25, t.main)
    for x in (0.05, 0.3, 0.55, 0.8):
        p.rect(x, 0.25, x + 0.06, 1, t.second)


@_drawable("water", 1.8, 0.16, "#8e5a2b #f5f0e1", "boats canoe rowboat raft sailboat dinghy kayak")
def boat(p: Pen, t: Tones) -> None:
    p.lines([(0.5, 0.0), (0.5, 0.62)], BLACK, 2)
    p.poly([(0.52, 0.02), (0.52, 0.58), (0.9, 0.58)], t.second)
    p.poly([(0.0, 0.6), (1.0, 0.6), (0.82, 1.0), (0.18, 1.0)], t.main)


@_drawable("water", 1.6, 0.4, "#5d3a1a #f2ead3", "ships galleon steamer ferry vessel")
def ship(p: Pen, t: Tones) -> None:
    for x in (0.3, 0.62):
        p.lines([(x, 0.0), (x, 0.72)], BLACK, 2)
        p.poly([(x - 0.16, 0.1), (x + 0.16, 0.1), (x + 0.19, 0.6), (x - 0.19, 0.6)], t.second)
    p.poly([(0.0, 0.7), (1.0, 0.66), (0.88, 1.0), (0.1, 1.0)], t.main)
    for x in (0.2, 0.4, 0.6):
        p.ell(x, 0.76, x + 0.06, 0.84, BLACK, edge=False)


@_drawable(
    "ground",
    1,
    1,
    "#3d7fb8 #d8eef8",
    "seas ocean oceans waves wave tide surf seaside beach coast shore bay harbour harbor port",
)
def sea(p: Pen, t: Tones) -> None:
    p.rect(0, 0, 1, 1, t.main, edge=False)
    for i in range(6):
        y = 0.1 + i * 0.15
        for k in range(8):
            x = (k + (i % 2) * 0.5) / 8
            p.lines([(x, y + 0.03), (x + 0.03, y), (x + 0.06, y + 0.03)], t.second, 1)


@_drawable("ground", 1, 1, "#5aa0c8 #cfe8f2", "lakes pond ponds lagoon")
def lake(p: Pen, t: Tones) -> None:
    p.ell(0.05, 0.0, 0.95, 0.7, t.main, edge=False)
    for y in (0.2, 0.35, 0.5):
        p.lines([(0.3, y), (0.5, y)], t.second)


@_drawable("ground", 1, 1, "#4f94c4 #d8eef8", "rivers stream streams creek brook canal")
def river(p: Pen, t: Tones) -> None:
    p.poly(
        [(0.42, 0.0), (0.5, 0.0), (0.75, 0.5), (0.9, 1.0), (0.5, 1.0), (0.45, 0.5)],
        t.main,
        edge=False,
    )
    p.lines([(0.5, 0.3), (0.6, 0.5), (0.7, 0.8)], t.second)


@_drawable("ground", 1, 1, "#5b5b60 #f1e3a0", "roads path paths highway lane trail track")
def road(p: Pen, t: Tones) -> None:
    p.poly([(0.45, 0.0), (0.55, 0.0), (0.85, 1.0), (0.15, 1.0)], t.main, edge=False)
    for y in (0.1, 0.35, 0.65):
        p.poly([(0.495, y), (0.505, y), (0.51, y + 0.12), (0.49, y + 0.12)], t.second, edge=False)


# ---------------------------------------------------------------- sky
@_drawable("sky", 1, 0.16, "#f5f1d8 #c9c4a8", "moons moonlight moonlit")
def moon(p: Pen, t: Tones) -> None:
    p.ell(0, 0, 1, 1, t.main, edge=False)
    p.ell(0.3, -0.05, 1.2, 0.85, t.sky, edge=False)


@_drawable("sky", 1, 0.18, "#ffd54f #ffb300", "sunny sunshine sunlight suns")
def sun(p: Pen, t: Tones) -> None:
    for k in range(8):
        a, b = (
            (0.5, 0.5),
            (
                (0.5, 0.0),
                (0.85, 0.15),
                (1.0, 0.5),
                (0.85, 0.85),
                (0.5, 1.0),
                (0.15, 0.85),
                (0.0, 0.5),
                (0.15, 0.15),
            )[k],
        )
        p.lines([a, b], t.second, 2)
    p.ell(0.18, 0.18, 0.82, 0.82, t.main, edge=False)


@_drawable("sky", 2.2, 0.14, "#f7f7f7 #dfe6ee", "clouds cloudy overcast")
def cloud(p: Pen, t: Tones) -> None:
    p.ell(0.0, 0.4, 0.5, 1.0, t.second, edge=False)
    p.ell(0.2, 0.0, 0.7, 0.9, t.main, edge=False)
    p.ell(0.5, 0.3, 1.0, 1.0, t.main, edge=False)


@_drawable("overlay", 1, 1, "#fff7c2 #ffffff", "stars starry starlight constellation")
def star(p: Pen, t: Tones) -> None:
    for k in range(14):
        x, y = ((k * 0.37) % 1.0), ((k * 0.61) % 1.0) * 0.45
        s = 0.006 if k % 3 else 0.011
        p.poly([(x, y - s * 2), (x + s, y), (x, y + s * 2), (x - s, y)], t.main, edge=False)


@_drawable("overlay", 1, 1, "#a8b8d0 #ffffff", "rains raining rainy storm stormy drizzle downpour")
def rain(p: Pen, t: Tones) -> None:
    for k in range(70):
        x, y = (k * 0.137) % 1.0, (k * 0.291) % 1.0
        p.lines([(x, y), (x - 0.01, y + 0.06)], t.main)


@_drawable(
    "overlay", 1, 1, "#ffffff #e8eef5", "snowing snowy snowfall blizzard snowflakes snowflake"
)
def snow(p: Pen, t: Tones) -> None:
    for k in range(90):
        x, y = (k * 0.173) % 1.0, (k * 0.377) % 1.0
        p.ell(x - 0.004, y - 0.007, x + 0.004, y + 0.007, t.main, edge=False)


@_drawable("overlay", 1, 1, "#dde3e8 #ffffff", "mist misty foggy haze")
def fog(p: Pen, t: Tones) -> None:  # drawn as bands; the frame also washes the picture
    for y in (0.45, 0.62, 0.8):
        p.ell(-0.2, y - 0.04, 1.2, y + 0.04, t.main, edge=False)


# ---------------------------------------------------------------- props
@_drawable("near", 1.6, 0.18, "#c0392b #2c3e50", "cars truck trucks taxi van jeep")
def car(p: Pen, t: Tones) -> None:
    p.poly([(0.22, 0.45), (0.3, 0.1), (0.7, 0.1), (0.8, 0.45)], _mix(t.sky, WHITE, 0.3))
    p.rect(0.0, 0.4, 1.0, 0.82, t.main)
    for x in (0.22, 0.78):
        p.ell(x - 0.12, 0.62, x + 0.12, 1.0, t.second)


@_drawable("near", 1.5, 0.16, "#8d5a33 #6b4226", "tables desk desks")
def table(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.0, 1.0, 0.14, t.main)
    for x in (0.06, 0.86):
        p.rect(x, 0.14, x + 0.08, 1.0, t.second)


@_drawable("near", 0.6, 0.2, "#a0522d #7b3f1d", "chairs stool armchair seat")
def chair(p: Pen, t: Tones) -> None:
    p.rect(0.1, 0.0, 0.25, 1.0, t.second)
    p.rect(0.1, 0.5, 0.9, 0.62, t.main)
    p.rect(0.75, 0.62, 0.9, 1.0, t.second)


@_drawable("near", 2.0, 0.14, "#8d6e63 #4e342e", "benches")
def bench(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.0, 1.0, 0.18, t.main)
    p.rect(0.0, 0.35, 1.0, 0.5, t.main)
    for x in (0.08, 0.84):
        p.rect(x, 0.5, x + 0.08, 1.0, t.second)


@_drawable("near", 1.9, 0.2, "#6d4c41 #eceff1", "beds bedroom bunk")
def bed(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.0, 0.08, 1.0, t.main)
    p.rect(0.0, 0.45, 1.0, 0.8, t.main)
    p.rect(0.05, 0.3, 1.0, 0.5, t.second)
    p.ell(0.1, 0.18, 0.35, 0.38, WHITE)
    p.rect(0.92, 0.45, 1.0, 1.0, t.main)


@_drawable(
    "near",
    0.3,
    0.34,
    "#37474f #ffe08a",
    "lamps lantern lanterns streetlight lamppost torch torches",
)
def lamp(p: Pen, t: Tones) -> None:
    if t.night:
        p.ell(-0.9, -0.3, 1.9, 0.55, _mix(t.sky, GLOW, 0.35), edge=False)
    p.rect(0.44, 0.2, 0.56, 1.0, t.main)
    p.poly([(0.15, 0.22), (0.85, 0.22), (0.7, 0.0), (0.3, 0.0)], t.second)


@_drawable("near", 0.4, 0.14, "#f5ecd7 #ff7f27", "candles candlelight")
def candle(p: Pen, t: Tones) -> None:
    p.ell(0.2, 0.0, 0.8, 0.35, t.second, edge=False)
    p.rect(0.3, 0.3, 0.7, 1.0, t.main)


@_drawable(
    "near", 1.3, 0.07, "#8e2c2c #f2ead3", "books notebook diary journal novel letters letter map"
)
def book(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.2, 1.0, 1.0, t.main)
    p.rect(0.05, 0.0, 0.95, 0.25, t.second)
    p.lines([(0.5, 0.0), (0.5, 0.25)], BLACK)


@_drawable("wall", 1.0, 0.14, "#f5f0e1 #3e2723", "clocks")
def clock(p: Pen, t: Tones) -> None:
    p.ell(0.0, 0.0, 1.0, 1.0, t.main)
    p.lines([(0.5, 0.5), (0.5, 0.15)], t.second, 2)
    p.lines([(0.5, 0.5), (0.75, 0.55)], t.second, 2)


@_drawable("wall", 0.8, 0.3, "#6d4c41 #cfe8ff", "windows windowsill")
def window(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.0, 1.0, 1.0, (25, 30, 60) if t.night else t.sky)
    p.lines([(0.5, 0.0), (0.5, 1.0)], t.main, 3)
    p.lines([(0.0, 0.5), (1.0, 0.5)], t.main, 3)
    p.lines([(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)], t.main, 4)


@_drawable("wall", 0.5, 0.45, "#7b4a2a #d4a437", "doors doorway gate gates entrance")
def door(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.0, 1.0, 1.0, t.main)
    p.rect(0.12, 0.08, 0.88, 0.45, _mix(t.main, BLACK, 0.15))
    p.rect(0.12, 0.52, 0.88, 0.92, _mix(t.main, BLACK, 0.15))
    p.ell(0.72, 0.48, 0.84, 0.55, t.second)


@_drawable(
    "near",
    1.2,
    0.16,
    "#ff7f27 #5d4037",
    "campfire campfires fire fires bonfire hearth fireplace flames",
)
def campfire(p: Pen, t: Tones) -> None:
    p.poly([(0.15, 0.95), (0.85, 0.75), (0.9, 0.85), (0.2, 1.0)], t.second)
    p.poly([(0.15, 0.75), (0.85, 0.95), (0.8, 1.0), (0.1, 0.85)], t.second)
    p.poly([(0.2, 0.85), (0.5, 0.0), (0.8, 0.85)], t.main, edge=False)
    p.poly([(0.35, 0.85), (0.5, 0.35), (0.65, 0.85)], GLOW, edge=False)


@_drawable("near", 3.0, 0.12, "#c8a165 #8d6e4a", "fences railing railings")
def fence(p: Pen, t: Tones) -> None:
    p.rect(0.0, 0.25, 1.0, 0.38, t.second)
    p.rect(0.0, 0.6, 1.0, 0.72, t.second)
    for k in range(7):
        x = k / 6.5
        p.poly([(x, 1.0), (x + 0.05, 1.0), (x + 0.05, 0.1), (x + 0.025, 0.0), (x, 0.1)], t.main)


@_drawable(
    "near",
    0.6,
    0.1,
    "#e84a5f #2e8b57",
    "flowers garden gardens rose roses tulip tulips daisy daisies blossom bouquet",
)
def flower(p: Pen, t: Tones) -> None:
    p.lines([(0.5, 0.4), (0.5, 1.0)], t.second, 2)
    for dx, dy in ((-0.25, 0), (0.25, 0), (0, -0.2), (0, 0.2)):
        p.ell(0.3 + dx, 0.2 + dy, 0.7 + dx, 0.45 + dy, t.main, edge=False)
    p.ell(0.38, 0.25, 0.62, 0.45, GLOW, edge=False)


@_drawable(
    "near", 1.6, 0.1, "#8a8478 #5f5a50", "rocks stone stones boulder boulders pebble pebbles"
)
def rock(p: Pen, t: Tones) -> None:
    p.poly([(0.0, 1.0), (0.1, 0.4), (0.35, 0.05), (0.7, 0.1), (0.95, 0.5), (1.0, 1.0)], t.main)
    p.poly([(0.35, 0.05), (0.7, 0.1), (0.55, 0.5)], t.second, edge=False)


# ---------------------------------------------------------------- creatures
def _legged(
    p: Pen, t: Tones, *, legs: float, neck: float, ears: str, tail: str, snout: float,
    head: float = 0.26, body: float = 0.62,
) -> None:  # fmt: skip
    """A four-legged animal facing left: body, legs, tail, head with ears and snout."""
    top = 1 - legs - 0.35
    for x in (0.25, 0.33, 0.72, 0.8) if legs > 0.1 else (0.28, 0.75):
        p.rect(
            x - 0.04,
            top + 0.25,
            x + 0.04,
            1.0,
            _mix(t.main, BLACK, 0.15) if x in (0.33, 0.8) else t.main,
        )
    if tail == "bushy":
        p.ell(0.82, top + 0.05, 1.05, top + 0.28, t.main)
        p.ell(0.96, top + 0.05, 1.05, top + 0.16, t.second, edge=False)
    elif tail == "thin":
        p.lines([(0.85, top + 0.12), (1.0, top - 0.05)], t.main, 2)
    elif tail == "tuft":
        p.lines([(0.85, top + 0.12), (0.98, top + 0.3)], t.main, 2)
        p.ell(0.94, top + 0.26, 1.02, top + 0.36, t.second)
    elif tail == "puff":
        p.ell(0.86, top + 0.02, 0.98, top + 0.16, WHITE)
    p.ell(0.18, top, 0.18 + body + 0.1, top + 0.36, t.main)
    p.ell(0.25, top + 0.18, 0.7, top + 0.36, t.second, edge=False)
    hx, hy = 0.02, top - neck - head * 0.5
    if neck:
        p.poly(
            [
                (0.2, top + 0.2),
                (0.34, top + 0.05),
                (hx + head * 0.9, hy + head * 0.5),
                (hx + head * 0.2, hy + head * 0.6),
            ],
            t.main,
        )
    if ears == "tall":
        for x in (0.06, 0.14):
            p.ell(hx + x, hy - head * 1.1, hx + x + 0.07, hy + 0.05, t.main)
    elif ears == "pointy":
        for x in (0.04, 0.15):
            p.poly(
                [(hx + x, hy + 0.05), (hx + x + 0.05, hy - head * 0.45), (hx + x + 0.1, hy + 0.05)],
                t.main,
            )
    elif ears == "round":
        for x in (0.02, 0.16):
            p.ell(hx + x, hy - 0.05, hx + x + 0.09, hy + 0.05, t.main)
    elif ears == "big":
        p.ell(hx + 0.1, hy - 0.05, hx + 0.38, hy + head * 1.3, _mix(t.main, BLACK, 0.1))
    elif ears == "antlers":
        for x in (0.08, 0.17):
            p.lines(
                [(hx + x, hy + 0.02), (hx + x, hy - 0.18), (hx + x - 0.05, hy - 0.25)],
                (110, 80, 50),
                2,
            )
            p.lines([(hx + x, hy - 0.1), (hx + x + 0.05, hy - 0.17)], (110, 80, 50), 2)
    elif ears == "mane":
        p.ell(hx - 0.06, hy - 0.06, hx + head + 0.08, hy + head + 0.06, t.second)
    p.ell(hx, hy, hx + head, hy + head, t.main)
    if snout:
        p.ell(hx - snout, hy + head * 0.45, hx + head * 0.5, hy + head * 0.85, t.second)
        p.ell(hx - snout, hy + head * 0.5, hx - snout + 0.04, hy + head * 0.62, BLACK, edge=False)
    p.ell(
        hx + head * 0.3,
        hy + head * 0.3,
        hx + head * 0.3 + 0.035,
        hy + head * 0.3 + 0.05,
        BLACK,
        edge=False,
    )
    if ears == "big":  # a trunk
        p.lines(
            [
                (hx + 0.02, hy + head * 0.6),
                (hx - 0.04, hy + head * 1.2),
                (hx - 0.02, hy + head * 1.6),
            ],
            t.main,
            6,
        )


def _creature(aspect: float, size: float, colours: str, also: str = "") -> Callable[[Draw], Draw]:
    return _drawable("creature", aspect, size, colours, also)


@_creature(2.2, 0.5, "#44607a #c9d6e0", "whales orca orcas dolphin dolphins humpback")
def whale(p: Pen, t: Tones) -> None:
    p.poly([(0.8, 0.5), (1.0, 0.15), (0.97, 0.42), (1.0, 0.75)], t.main)
    p.ell(0.0, 0.2, 0.9, 0.95, t.main)
    p.ell(0.08, 0.6, 0.75, 0.95, t.second, edge=False)
    p.poly([(0.35, 0.8), (0.5, 0.8), (0.42, 1.0)], t.main)
    p.ell(0.14, 0.45, 0.19, 0.53, BLACK, edge=False)
    p.lines([(0.05, 0.68), (0.25, 0.72)], _mix(t.main, BLACK, 0.4))
    p.lines([(0.3, 0.2), (0.27, 0.02)], (200, 225, 240), 2)
    p.lines([(0.3, 0.2), (0.35, 0.04)], (200, 225, 240), 2)


@_creature(1.5, 0.3, "#d35400 #f5efe6", "foxes vixen")
def fox(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.3, neck=0.0, ears="pointy", tail="bushy", snout=0.08)


@_creature(1.3, 0.22, "#8a8a8a #e6e6e6", "cats kitten kittens kitty")
def cat(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.3, neck=0.0, ears="pointy", tail="thin", snout=0.0)


@_creature(1.4, 0.3, "#a0703c #eadcc8", "dogs puppy puppies pup hound")
def dog(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.32, neck=0.0, ears="round", tail="thin", snout=0.06)


@_creature(1.4, 0.36, "#5d5d66 #c9c9d0", "wolves")
def wolf(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.32, neck=0.05, ears="pointy", tail="bushy", snout=0.1)


@_creature(1.4, 0.45, "#6b4226 #a47551", "bears cub cubs")
def bear(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.25, neck=0.0, ears="round", tail="", snout=0.05, head=0.32, body=0.66)


@_creature(1.4, 0.45, "#d4a437 #f0d9a0", "lions lioness tiger tigers")
def lion(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.3, neck=0.0, ears="mane", tail="tuft", snout=0.04, head=0.28)


@_creature(1.1, 0.7, "#7b4a24 #3b2412", "horses pony ponies stallion mare foal unicorn")
def horse(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.42, neck=0.18, ears="pointy", tail="tuft", snout=0.08, head=0.2)


@_creature(1.0, 0.62, "#a0703c #f3e3cc", "deers stag fawn reindeer elk moose")
def deer(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.42, neck=0.15, ears="antlers", tail="puff", snout=0.05, head=0.18)


@_creature(1.3, 0.75, "#8a8a96 #b8b8c2", "elephants mammoth")
def elephant(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.3, neck=0.0, ears="big", tail="thin", snout=0.0, head=0.34, body=0.7)


@_creature(1.0, 0.18, "#9c9c9c #f0e0e0", "rabbits bunny bunnies hare hares")
def rabbit(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.1, neck=0.0, ears="tall", tail="puff", snout=0.0, head=0.3)


@_creature(1.4, 0.08, "#8d8d8d #e8c8c8", "mice rat rats")
def mouse(p: Pen, t: Tones) -> None:
    _legged(p, t, legs=0.08, neck=0.0, ears="round", tail="thin", snout=0.05, head=0.3)


@_creature(1.0, 0.2, "#6d8b3a #d9d2a0", "owls owlet")
def owl(p: Pen, t: Tones) -> None:
    p.ell(0.15, 0.15, 0.85, 1.0, t.main)
    p.ell(0.3, 0.45, 0.7, 0.95, t.second, edge=False)
    for x in (0.2, 0.65):
        p.poly([(x, 0.25), (x + 0.08, 0.02), (x + 0.15, 0.22)], t.main)
        p.ell(x + 0.02, 0.22, x + 0.16, 0.4, WHITE)
        p.ell(x + 0.06, 0.27, x + 0.12, 0.36, BLACK, edge=False)
    p.poly([(0.45, 0.38), (0.55, 0.38), (0.5, 0.48)], (230, 160, 40))


@_creature(
    1.3,
    0.12,
    "#5b7db1 #f2c14e",
    "birds crow crows raven ravens sparrow gull gulls seagull seagulls parrot"
    " robin eagle hawk swan duck goose pigeon dove",
)
def bird(p: Pen, t: Tones) -> None:
    p.lines([(0.75, 0.95), (0.7, 0.75)], (200, 140, 40))
    p.poly([(0.75, 0.5), (1.0, 0.35), (1.0, 0.7)], t.main)
    p.ell(0.25, 0.35, 0.85, 0.8, t.main)
    p.ell(0.05, 0.15, 0.4, 0.5, t.main)
    p.poly([(0.05, 0.3), (-0.1, 0.36), (0.05, 0.4)], t.second)
    p.poly([(0.4, 0.5), (0.75, 0.5), (0.6, 0.05)], _mix(t.main, BLACK, 0.2))
    p.ell(0.14, 0.26, 0.19, 0.32, BLACK, edge=False)


@_creature(1.8, 0.12, "#f39c12 #ffd27f", "fishes goldfish shark sharks salmon trout")
def fish(p: Pen, t: Tones) -> None:
    p.poly([(0.7, 0.5), (1.0, 0.1), (1.0, 0.9)], t.second)
    p.ell(0.0, 0.1, 0.8, 0.9, t.main)
    p.poly([(0.3, 0.15), (0.5, -0.05), (0.55, 0.2)], t.second)
    p.ell(0.12, 0.35, 0.2, 0.47, BLACK, edge=False)


@_creature(1.5, 0.7, "#2e8b57 #f1c40f", "dragons wyvern drake")
def dragon(p: Pen, t: Tones) -> None:
    p.poly([(0.45, 0.45), (0.6, 0.0), (0.95, 0.1), (0.75, 0.45)], t.second)
    _legged(p, t, legs=0.25, neck=0.2, ears="pointy", tail="thin", snout=0.1, head=0.22)
    p.poly([(0.82, 0.55), (1.05, 0.75), (0.85, 0.65)], t.main)


@_creature(
    0.7, 0.6, "#a7b1bc #3fa7d6", "robots android androids automaton droid droids cyborg machine"
)
def robot(p: Pen, t: Tones) -> None:
    p.lines([(0.5, 0.12), (0.5, 0.0)], t.main, 2)
    p.ell(0.44, -0.03, 0.56, 0.05, t.second)
    p.rect(0.22, 0.12, 0.78, 0.38, t.main)
    for x in (0.32, 0.56):
        p.ell(x, 0.19, x + 0.12, 0.31, t.second)
    p.rect(0.15, 0.42, 0.85, 0.75, t.main)
    p.rect(0.35, 0.5, 0.65, 0.65, t.second)
    for x in (0.0, 0.87):
        p.rect(x, 0.44, x + 0.13, 0.7, _mix(t.main, BLACK, 0.2))
    for x in (0.25, 0.6):
        p.rect(x, 0.75, x + 0.15, 1.0, _mix(t.main, BLACK, 0.2))


@_creature(1.2, 0.1, "#4caf50 #c5e1a5", "frogs toad toads")
def frog(p: Pen, t: Tones) -> None:
    p.ell(0.0, 0.55, 0.45, 1.0, t.main)
    p.ell(0.55, 0.55, 1.0, 1.0, t.main)
    p.ell(0.1, 0.2, 0.9, 0.95, t.main)
    p.ell(0.25, 0.5, 0.75, 0.9, t.second, edge=False)
    for x in (0.18, 0.62):
        p.ell(x, 0.05, x + 0.2, 0.35, WHITE)
        p.ell(x + 0.06, 0.13, x + 0.14, 0.27, BLACK, edge=False)


@_creature(1.6, 0.14, "#6b8e23 #8d6e4a", "turtles tortoise tortoises")
def turtle(p: Pen, t: Tones) -> None:
    p.ell(0.0, 0.35, 0.25, 0.75, t.second)
    for x in (0.2, 0.7):
        p.ell(x, 0.7, x + 0.14, 1.0, t.second)
    p.ell(0.15, 0.05, 0.95, 0.95, t.main)
    p.poly(
        [(0.4, 0.3), (0.55, 0.2), (0.7, 0.3), (0.7, 0.5), (0.55, 0.6), (0.4, 0.5)],
        _mix(t.main, BLACK, 0.2),
    )
    p.ell(0.05, 0.45, 0.09, 0.52, BLACK, edge=False)


@_creature(1.3, 0.1, "#8e44ad #f1c40f", "butterflies moth moths")
def butterfly(p: Pen, t: Tones) -> None:
    for flip in (False, True):
        q = p.sub(0, 0, 1, 1, flip=flip)
        q.ell(0.0, 0.0, 0.5, 0.55, t.main)
        q.ell(0.08, 0.5, 0.48, 0.95, t.main)
        q.ell(0.15, 0.15, 0.3, 0.35, t.second, edge=False)
    p.rect(0.47, 0.15, 0.53, 0.9, BLACK)


#: Every drawable by name, and the other words (synonyms, plurals) that ask for them.
DRAWABLES: dict[str, Drawable] = dict(_registry)
SYNONYMS: dict[str, tuple[str, ...]] = {
    **_synonyms,
    **{n + "s": (n,) for n in DRAWABLES if n + "s" not in DRAWABLES},
}
CREATURES = tuple(n for n, d in DRAWABLES.items() if d.where == "creature")
_WORD = re.compile(r"[a-z]+")


def lookup(word: str) -> tuple[str, ...]:
    """The drawables a word names (``"whales"`` -> whale, ``"harbour"`` -> sea), or ()."""
    w = word.lower()
    if w in DRAWABLES:
        return (w,)
    if w in SYNONYMS:
        return SYNONYMS[w]
    for cut, add in (("ies", "y"), ("ves", "f"), ("es", ""), ("s", "")):
        if w.endswith(cut) and len(w) > len(cut) + 2 and (w[: -len(cut)] + add) in DRAWABLES:
            return (w[: -len(cut)] + add,)
    return ()


@lru_cache(maxsize=512)
def find(text: str, skip: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The drawables ``text`` names, by whole words, in order of first mention, without
    repeats; words in ``skip`` (lower-case, e.g. the characters' names) are ignored."""
    found: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in skip:
            found.update(dict.fromkeys(lookup(word)))
    return tuple(found)


def creature_of(text: str) -> str | None:
    """The first creature ``text`` names (``"Finn is a whale"`` -> whale), or None."""
    return next((n for n in find(text) if DRAWABLES[n].where == "creature"), None)


def tones(
    name: str, *, sky: RGB, ink: RGB | None, night: bool, tint: RGB, accent: RGB = GLOW
) -> Tones:
    """A drawable's default colours, a little tinted towards ``tint`` (the style's)."""
    d = DRAWABLES[name]
    return Tones(_mix(d.main, tint, 0.18), _mix(d.second, tint, 0.18), accent, ink, sky, night)


def draw(name: str, pen: Pen, t: Tones) -> None:
    """Draw the drawable ``name`` with ``pen`` and ``t``."""
    DRAWABLES[name].draw(pen, t)
