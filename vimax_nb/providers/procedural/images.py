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

import os
import random
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

from ..base import ImageOutput, PathLike, ProviderCall, ProviderError, parse_prompt, parse_size
from .figures import CharacterLook, _draw_figure, character_look
from .palettes import (
    RGB,
    SAND,
    Palette,
    _background,
    _has,
    _mix,
    _rng,
    scene_setting,
    style_palette,
)

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
    "scene_setting",
    "style_palette",
]

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
MAX_SIDE = 4096
PROVIDER = "procedural"
#: Portraits are RGBA: opaque on the figure, alpha 254 (invisible) on the backdrop, so
#: frames cut the figure out exactly; other portraits are cut out by colour.
FIGURE_ALPHA = 255


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
