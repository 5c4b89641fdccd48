"""Procedural images: character portraits and storyboard frames drawn with Pillow.

:class:`ProceduralImageModel` reads the labelled sections of a prompt (see
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
Palettes, scene settings and backgrounds live in :mod:`.palettes`, characters' looks
and figures in :mod:`.figures`; their public names are importable from here too.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps, PngImagePlugin

from ..base import ImageOutput, PathLike, ProviderCall, ProviderError, parse_prompt, parse_size
from . import drawables as dw
from .figures import _COLOURS, CharacterLook, _draw_figure, character_look
from .palettes import RGB, SAND, Palette, _has, _hex, _mix, _rng, scene_setting, style_palette
from .scenery import _background, horizon, place, setting, sky_tones

__all__ = [
    "FIGURE_ALPHA",
    "MAX_SIDE",
    "PROVIDER",
    "RGB",
    "SAND",
    "CharacterLook",
    "Font",
    "Palette",
    "ProceduralImageModel",
    "character_look",
    "placed_drawables",
    "scene_setting",
    "style_palette",
]

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
MAX_SIDE = 4096
PROVIDER = "procedural"
#: Portraits are RGBA: opaque on the figure, alpha 254 (invisible) on the backdrop, so
#: frames cut the figure out exactly; other portraits are cut out by colour.
FIGURE_ALPHA = 255


#: The PNG text chunk that reports what a picture shows (see :func:`placed_drawables`).
REPORT_KEY = "vimax:drawables"


def placed_drawables(path: PathLike) -> dict[str, object]:
    """What a procedural PNG reports it shows, or ``{}`` if it carries no report.

    A frame: ``{"kind": "frame", "drawables": [names...], "setting": "interior" or
    "exterior", "time": "day"|"dawn"|"dusk"|"night", "weather": [...], "style": ...,
    "characters": {name: "person" or a creature}}``; a portrait: ``{"kind": "portrait",
    "figure": "person" or a creature, "drawables": [...], "style": ...}``."""
    try:
        with Image.open(path) as opened:
            text = opened.info.get(REPORT_KEY)
    except (OSError, ValueError):
        return {}
    try:
        report = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def _report(img: Image.Image, report: dict[str, object]) -> Image.Image:
    """Attach ``report`` to ``img``: in ``info`` and in the PNG text chunk it is saved with."""
    text = json.dumps(report, sort_keys=True)
    info = PngImagePlugin.PngInfo()
    info.add_text(REPORT_KEY, text)
    img.info[REPORT_KEY] = text
    img.encoderinfo = {"pnginfo": info}
    return img


def _noise(size: tuple[int, int], key: str, cell: int) -> Image.Image:
    return _noise_cached(size, key, cell)


@lru_cache(maxsize=16)
def _noise_cached(size: tuple[int, int], key: str, cell: int) -> Image.Image:
    """Seeded grey noise, ``cell``-pixel blobs smoothed up to ``size`` (shared: never mutate)."""
    w, h = max(1, size[0] // cell), max(1, size[1] // cell)
    small = Image.frombytes("L", (w, h), _rng("noise", key, w, h).randbytes(w * h))
    return small.resize(size, Image.Resampling.BICUBIC)


@lru_cache(maxsize=8)
def _vignette(size: tuple[int, int]) -> Image.Image:
    radial = Image.radial_gradient("L").resize(size, Image.Resampling.BILINEAR)
    return radial.point(lambda v: 255 - max(0, v - 150) * 2)


@lru_cache(maxsize=8)
def _hatching(size: tuple[int, int]) -> Image.Image:
    hatch = Image.new("L", size, 255)
    d = ImageDraw.Draw(hatch)
    for x in range(-size[1], size[0], 5):
        d.line((x, size[1], x + size[1], 0), fill=120)
    return hatch


def _outlines(img: Image.Image, threshold: int = 40) -> Image.Image:
    """Bold dark outlines on the colour edges of ``img``."""
    edges = img.convert("L").filter(ImageFilter.FIND_EDGES)
    ink = edges.point(lambda v: 0 if v > threshold else 255).filter(ImageFilter.MinFilter(3))
    return ImageChops.multiply(img, ink.convert("RGB"))


def _finish(img: Image.Image, style_name: str) -> Image.Image:
    """The style's post-processing: watercolor washes on paper, pixel art blocks, noir's
    contrast and vignette, anime's flat colours and outlines, oil's brush texture,
    sketch's pencil lines, comic, pastel."""
    size = img.size
    if style_name == "noir":
        grey = ImageOps.autocontrast(img.convert("L"), cutoff=2)
        grey = grey.point(lambda v: round(255 / (1 + 2.718 ** (-(v - 128) / 28))))
        return ImageChops.multiply(grey, _vignette(size)).convert("RGB")
    if style_name == "pixel art":
        w, h = size
        f = max(4, w // 100)
        small = img.resize((max(1, w // f), max(1, h // f)), Image.Resampling.BOX)
        small = small.quantize(colors=16, method=Image.Quantize.MEDIANCUT).convert("RGB")
        return small.resize((w, h), Image.Resampling.NEAREST)
    if style_name == "watercolor":
        soft = img.filter(ImageFilter.BoxBlur(2))
        wash = Image.blend(soft, Image.new("RGB", size, (255, 253, 247)), 0.25)
        bleed = ImageOps.invert(soft.convert("L").filter(ImageFilter.FIND_EDGES))
        pooled = ImageChops.multiply(
            wash, bleed.point(lambda v: 150 + v * 105 // 255).convert("RGB")
        )
        paper = _noise(size, "paper", 3).point(lambda v: 232 + v * 23 // 255)
        blotch = _noise(size, "wash", 24).point(lambda v: 236 + v * 19 // 255)
        return ImageChops.multiply(pooled, ImageChops.multiply(paper, blotch).convert("RGB"))
    if style_name == "sketch":
        grey = img.convert("L")
        edges = ImageOps.autocontrast(ImageOps.invert(grey.filter(ImageFilter.FIND_EDGES)))
        shade = Image.composite(
            _hatching(size), Image.new("L", size, 255), grey.point(lambda v: 255 if v < 110 else 0)
        )
        paper = _noise(size, "paper", 3).point(lambda v: 230 + v * 20 // 255)
        pencil = ImageChops.multiply(ImageChops.multiply(edges, shade), paper)
        return ImageChops.multiply(Image.new("RGB", size, (250, 246, 236)), pencil.convert("RGB"))
    if style_name in ("comic", "anime"):
        flat = ImageOps.posterize(
            img.filter(ImageFilter.SMOOTH_MORE), 3 if style_name == "comic" else 4
        )
        return _outlines(flat)
    if style_name == "oil painting":
        daubed = img.filter(ImageFilter.ModeFilter(5)).filter(ImageFilter.SMOOTH)
        strokes = _noise(size, "brush", 2).filter(ImageFilter.BoxBlur(2)).filter(ImageFilter.EMBOSS)
        relief = ImageOps.autocontrast(strokes).point(lambda v: 200 + v * 55 // 255)
        return ImageChops.multiply(ImageOps.autocontrast(daubed, cutoff=1), relief.convert("RGB"))
    if style_name == "pastel":
        return Image.blend(img, Image.new("RGB", size, (255, 255, 255)), 0.2)
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


Cutout = tuple[Image.Image, Image.Image, float, float, int, str]


@lru_cache(maxsize=64)
def _cutout(path: str, mtime_ns: int) -> Cutout | None:
    """A portrait's figure (above its name strip) and mask, the figure's left edge from the
    image centre, its top above the strip, the strip's top and what the figure is ("person",
    a creature, or "" if the portrait does not say); None if unreadable or blank.

    The mask is the alpha channel where it is used (``FIGURE_ALPHA`` marks our figures,
    lower values are transparency), else every pixel unlike the top-left (backdrop) one.
    The images are shared: never mutate them."""
    try:
        with Image.open(path) as opened:
            rgba = opened.convert("RGBA")
            text = opened.info.get(REPORT_KEY)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    try:
        kind = json.loads(text).get("figure", "") if isinstance(text, str) else ""
    except (ValueError, AttributeError):
        kind = ""
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
    left, rise = bbox[0] - img.width / 2, region - bbox[1]
    return img.crop(bbox), mask.crop(bbox), left, rise, region, str(kind)


def _load_cutout(path: PathLike) -> Cutout | None:
    try:
        return _cutout(str(path), os.stat(path).st_mtime_ns)
    except OSError:
        return None


_COAT = re.compile(r"\b([a-z]+)(?:[- ]([a-z]+))? (?:fur|skin|feathers|shell|scales|casing|frame)\b")
_EXTRA_COLOURS = {
    "russet": "#b5562a", "sandy": "#d8b47a", "dark": "#2f3640", "copper": "#b87333",
    "steel": "#8a9aa8", "enamel": "#eeeeee", "ginger": "#d2691e", "tawny": "#c08040",
}  # fmt: skip


def creature_of(name: str, features: str) -> str | None:
    """The creature a character is, from its name or the first clause of its features
    (``"Finn is a whale, with..."`` -> whale); None for a person."""
    first = re.split(r"[,.;]| with | who | wears | carries ", features.lower(), maxsplit=1)[0]
    return dw.creature_of(name) or dw.creature_of(first)


def creature_tones(kind: str, look: CharacterLook, features: str, pal: Palette) -> dw.Tones:
    """A creature's colours: a colour word before its fur/skin/feathers... wins, else the
    creature's own colour; the accent is the character's."""
    item = dw.DRAWABLES[kind]
    main = item.main
    for words in _COAT.findall(features.lower()):
        for word in reversed([w for w in words if w]):
            code = _COLOURS.get(word) or _EXTRA_COLOURS.get(word)
            if code:
                main = _hex(code)
                break
    second = _mix(main, (255, 255, 255), 0.55) if main != item.main else item.second
    return dw.Tones(main, second, look.accent, pal.ink, pal.sky)


class ProceduralImageModel:
    """An :class:`~vimax_nb.providers.base.ImageModel` that draws instead of asking a model.

    Guarantees: the same prompt, reference images and size give the same pixels (and
    PNG bytes); a character looks the same in every portrait and frame; frames of one
    ``scene`` share their background; first and last frames of a shot differ; missing
    or unreadable references are skipped. Thread-safe. Invalid sizes raise
    :class:`ProviderError` (not retryable).
    """

    provider = PROVIDER
    model = "procedural-image"

    def probe(self) -> None:
        """Nothing to reach: always ready."""

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        call: ProviderCall | None = None,
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
        subject = re.sub(r"(?i)^\s*(full-body\s+)?portrait of\s*", "", s.get("subject", ""))
        name = s.get("character") or subject.split(",")[0].strip() or "someone"
        view_text = s.get("view", "").lower().replace("profile", "side")
        view = next((v for v in ("back", "side") if v in view_text), "front")
        features = s.get("features", "")
        look = character_look(name, features)
        kind = creature_of(name, features)
        img = Image.new("RGB", size, pal.backdrop)
        d = ImageDraw.Draw(img)
        label = _label_height(h)
        feet = h - label - max(2, h // 40)
        u = (feet - h * 0.04) * look.height / 0.97
        d.ellipse(
            (w / 2 - 0.15 * u, feet - 0.02 * u, w / 2 + 0.15 * u, feet + 0.012 * u),
            fill=_mix(pal.backdrop, pal.ink, 0.15),
        )
        if kind is None:
            _draw_figure(d, look, view, w / 2, feet - 0.97 * u, u, pal.ink)
            silhouette = Image.new("RGB", size)  # the figure in white: the cut-out mask
            white = (255, 255, 255)
            figure = replace(look, skin=white, hair=white, top=white, bottom=white, shoes=white)
            figure = replace(figure, accent=white)
            _draw_figure(ImageDraw.Draw(silhouette), figure, view, w / 2, feet - 0.97 * u, u, white)
            mask = silhouette.convert("L")
        else:  # drawn on a clear layer: its alpha is the cut-out mask
            item, tones = dw.DRAWABLES[kind], creature_tones(kind, look, features, pal)
            tall = (feet - h * 0.04) * min(1.0, max(0.15, item.size * 1.2))
            wide = min(w * 0.92, tall * item.aspect)
            tall = wide / item.aspect
            layer = Image.new("RGBA", size, (0, 0, 0, 0))
            line = max(1, w // 200)
            pen = dw.Pen(
                ImageDraw.Draw(layer),
                (w / 2 - wide / 2, feet - tall, w / 2 + wide / 2, feet),
                line,
                pal.ink,
                view == "side",
            )
            if view == "back":
                tones = replace(tones, second=tones.main)
            dw.draw(kind, pen, tones)
            band = (
                w / 2 - wide * 0.08,
                feet - tall * 0.62,
                w / 2 + wide * 0.08,
                feet - tall * 0.52,
            )
            ImageDraw.Draw(layer).rectangle(band, fill=(*look.accent, 255))  # neckerchief or collar
            mask = layer.getchannel("A").point(lambda v: 255 if v > 127 else 0)
            img.paste(layer.convert("RGB"), (0, 0), mask)
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
        img.putalpha(mask.point(lambda v: 255 if v else FIGURE_ALPHA - 1))
        figure_name = kind or "person"
        return _report(
            img,
            {
                "kind": "portrait",
                "figure": figure_name,
                "drawables": [figure_name],
                "style": style_name,
            },
        )

    def _frame(self, s: dict[str, str], refs: list[PathLike], size: tuple[int, int]) -> Image.Image:
        w, h = size
        style = s.get("style", "")
        style_name, pal = style_palette(style)
        description = s.get("description") or s.get("text") or ""
        scene = s.get("scene") or description
        last = "last" in s.get("frame", "").lower()
        background, placed_here = _background(style, scene, size)
        img = background.copy()
        placed = list(placed_here)
        where = setting(scene)
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
        shift = -direction * 0.05 * w * last
        cuts = [
            _load_cutout(refs[i]) if i < len(refs) else None for i in range(len(names) or len(refs))
        ]
        figures = {
            n: (c[5] if c else "") or dw.creature_of(n) or "person"
            for n, c in zip(names, cuts, strict=False)
        }
        skip = frozenset(w.lower() for n in names for w in re.findall(r"[A-Za-z]+", n))
        wanted = [
            n for n in dw.find(description, skip)
            if n not in placed and n not in figures.values() and n not in ("rain", "snow", "fog")
        ]  # fmt: skip
        sky, _, _ = sky_tones(pal, where)
        d = ImageDraw.Draw(img)
        hy = horizon(scene, style, size)
        line = max(1, w // (160 if style_name in ("anime", "comic") else 400))
        for name in wanted:
            item, rng = dw.DRAWABLES[name], _rng("prop", scene, shot, name, size)

            def put(
                what: str,
                area: tuple[float, float, float, float],
                base: float,
                scale: float,
                r: random.Random = rng,
            ) -> None:
                place(what, d, r, area=area, base=base, scale=scale, pal=pal, s=where, sky=sky,
                      line=line, shift=shift)  # fmt: skip

            if item.where in ("far", "water", "ground") and where.inside:
                view = (w * 0.62, h * 0.12, w * 0.86, h * 0.4)  # seen through a window
                d.rectangle(view, fill=sky)
                put(name, view, view[3], view[3] - view[1])
                put("window", view, view[3], view[3] - view[1])
            elif item.where in ("far", "ground"):
                put(name, (0, 0, w, hy if item.where == "far" else h), hy + h * 0.03, h)
            elif item.where == "water":
                put(name, (0, 0, w, h), (hy + h * 0.8) / 2, h)
            elif item.where == "sky":
                put(name, (0, h * 0.04, w, hy * 0.6), hy, h)
            elif item.where == "wall" and where.inside:
                put(name, (w * 0.05, h * 0.1, w * 0.95, hy), hy - h * 0.15, h)
            else:
                put(
                    name,
                    (w * 0.03, 0, w * 0.97, h),
                    h * _rng("y", scene, shot, name).uniform(0.8, 0.93),
                    h,
                )
            placed.append(name)
        for i, cut in enumerate(cuts):
            label = names[i] if i < len(names) else i
            jitter = _rng("place", scene, shot, label).uniform(-1, 1)
            x = w * ((i + 1) / (len(cuts) + 1) + 0.06 * jitter + direction * 0.09 * last)
            if cut is None:
                continue
            figure, mask, left, rise, region, _ = cut
            scale = h * reach / region
            fw, fh = max(1, round(figure.width * scale)), max(1, round(figure.height * scale))
            at = (round(x + left * scale), round(ground - rise * scale))
            img.paste(
                figure.resize((fw, fh), Image.Resampling.BILINEAR),
                at,
                mask.resize((fw, fh), Image.Resampling.BILINEAR),
            )
            if i < len(names):
                placed.append(figures[names[i]])
        weather = [n for n in dw.find(description, skip) if n in ("rain", "snow", "fog")]
        for name in weather:
            if name not in placed:
                place(
                    name,
                    d,
                    _rng("weather", name),
                    area=(0, 0, w, h),
                    base=h,
                    scale=h,
                    pal=pal,
                    s=where,
                    sky=sky,
                    line=0,
                )
                placed.append(name)
        if "fog" in placed:
            img = Image.blend(img, Image.new("RGB", size, (214, 218, 224)), 0.35)
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
        report: dict[str, object] = {
            "kind": "frame",
            "drawables": list(dict.fromkeys(placed)),
            "setting": where.where,
            "time": where.when,
            "weather": sorted(set(where.weather) | set(weather)),
            "style": style_name,
            "characters": {n: figures[n] for n in names if n in figures},
        }
        return _report(img, report)
