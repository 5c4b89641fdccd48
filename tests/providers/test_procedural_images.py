"""Procedural frames draw what the text names, as what it is, in a style one can see."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

from vimax_nb.providers.base import compose_prompt
from vimax_nb.providers.procedural.drawables import CREATURES, DRAWABLES, lookup
from vimax_nb.providers.procedural.images import ProceduralImageModel, placed_drawables

FINN = "Finn is a whale, with sleek, dark skin and a heavy, rounded build. Finn wears a scarf."
MARA = "Mara is a lighthouse keeper, with curly grey hair. Mara wears a mustard-yellow coat."


def portrait(name: str, features: str, style: str = "cinematic") -> str:
    return compose_prompt(
        subject=f"full-body portrait of {name}, front view",
        character=name,
        view="front",
        features=features,
        style=style,
    )


def frame(
    description: str, scene: str = "lighthouse, morning", style: str = "cinematic", chars: str = ""
) -> str:
    return compose_prompt(
        style=style,
        scene=scene,
        frame="first",
        shot="0",
        description=description,
        characters=chars,
        camera="camera 0; static",
    )


@pytest.fixture
def gen() -> ProceduralImageModel:
    return ProceduralImageModel()


def save(
    gen: ProceduralImageModel, prompt: str, path: Path, refs: list[Path] | None = None
) -> Path:
    return gen.generate_single_image(prompt, refs or []).save(path)


def test_the_vocabulary_is_large_and_reads_synonyms_and_plurals() -> None:
    assert len(CREATURES) >= 20
    assert len(DRAWABLES) - len(CREATURES) >= 40
    assert lookup("whales") == ("whale",)
    assert lookup("kitten") == ("cat",)
    assert lookup("ocean") == ("sea",)
    assert lookup("wolves") == ("wolf",)
    assert lookup("lighthouses") == ("lighthouse",)
    assert lookup("quietly") == ()


def test_lighthouse_and_whale_named_in_the_text_are_both_placed(
    gen: ProceduralImageModel, tmp_path: Path
) -> None:
    out = save(gen, frame("A whale surfaces by the lighthouse; a boat drifts."), tmp_path / "f.png")
    placed = placed_drawables(out)["drawables"]
    assert isinstance(placed, list)
    assert {"lighthouse", "whale", "boat", "sea"} <= set(placed)
    assert placed_drawables(tmp_path / "missing.png") == {}


def test_a_whale_character_is_drawn_as_a_whale_not_a_person(
    gen: ProceduralImageModel, tmp_path: Path
) -> None:
    finn = save(gen, portrait("Finn", FINN), tmp_path / "finn.png")
    mara = save(gen, portrait("Mara", MARA), tmp_path / "mara.png")
    assert placed_drawables(finn)["figure"] == "whale"
    assert placed_drawables(mara)["figure"] == "person"

    # A person is taller than wide; the whale's cut-out (alpha 255) is wider than tall.
    def figure_box(path: Path) -> tuple[int, int]:
        alpha = Image.open(path).getchannel("A").point(lambda v: 255 if v == 255 else 0)
        box = alpha.getbbox()
        assert box is not None
        return box[2] - box[0], box[3] - box[1]

    fw, fh = figure_box(finn)
    mw, mh = figure_box(mara)
    assert fw > fh * 1.5
    assert mh > mw * 1.5
    out = save(gen, frame("Mara and Finn", chars="Mara, Finn"), tmp_path / "f.png", [mara, finn])
    assert placed_drawables(out)["characters"] == {"Mara": "person", "Finn": "whale"}


def test_interiors_and_exteriors_differ(gen: ProceduralImageModel, tmp_path: Path) -> None:
    cave = save(gen, frame("quiet", scene="INT. CAVE - DAY"), tmp_path / "cave.png")
    meadow = save(gen, frame("quiet", scene="EXT. MEADOW - DAY"), tmp_path / "meadow.png")
    assert placed_drawables(cave)["setting"] == "interior"
    assert "cave" in placed_drawables(cave)["drawables"]  # type: ignore[operator]
    assert placed_drawables(meadow)["setting"] == "exterior"

    def top_brightness(path: Path) -> float:
        return ImageStat.Stat(Image.open(path).convert("L").crop((0, 0, 640, 40))).mean[0]

    assert top_brightness(cave) < top_brightness(meadow) - 25  # a rock ceiling, not a sky


def test_night_is_darker_than_day_and_has_a_moon(gen: ProceduralImageModel, tmp_path: Path) -> None:
    night = save(gen, frame("quiet", scene="the beach, night"), tmp_path / "n.png")
    day = save(gen, frame("quiet", scene="the beach, day"), tmp_path / "d.png")
    mean = [ImageStat.Stat(Image.open(p).convert("L")).mean[0] for p in (night, day)]
    assert mean[0] < mean[1] - 30
    assert placed_drawables(night)["time"] == "night"
    assert "moon" in placed_drawables(night)["drawables"]  # type: ignore[operator]
    rainy = save(gen, frame("rain falls", scene="the beach, day"), tmp_path / "r.png")
    assert "rain" in placed_drawables(rainy)["weather"]  # type: ignore[operator]


def picture(gen: ProceduralImageModel, style: str) -> Image.Image:
    text = "A fox sits by a house under a tree near the lighthouse"
    return gen.generate_single_image(frame(text, style=style)).image.convert("RGB")


def grain(image: Image.Image) -> float:
    """The share of pixels unlike their 3x3 median: texture (paper, brush), not shapes."""
    grey = image.convert("L").crop((0, 0, 640, 300))
    diff = ImageChops.difference(grey, grey.filter(ImageFilter.MedianFilter(3)))
    return diff.point(lambda v: 255 if v else 0).histogram()[255] / (640 * 300)


def test_styles_change_the_rendering_visibly(gen: ProceduralImageModel) -> None:
    plain = picture(gen, "cinematic")
    region = (0, 0, 640, 300)  # above the caption strip
    # Pixel art: 6x6 blocks of one colour, and few colours.
    pixel = picture(gen, "pixel art").crop(region)
    block = pixel.crop((60, 60, 66, 66)).getcolors()
    assert block is not None
    assert len(block) == 1
    assert len(pixel.getcolors(1 << 16) or []) <= 16
    # Noir: greyscale and high contrast.
    noir = picture(gen, "noir").crop(region)
    r, g, b = noir.split()
    assert r.tobytes() == g.tobytes() == b.tobytes()
    assert ImageStat.Stat(noir.convert("L")).stddev[0] > 60
    # Watercolor: lighter washes with a paper grain (local variance in flat areas).
    water = picture(gen, "watercolor")
    assert ImageStat.Stat(water.convert("L")).mean[0] > ImageStat.Stat(plain.convert("L")).mean[0]
    assert grain(water) > grain(plain) + 0.2
    # Sketch: mostly light paper and nearly colourless.
    sketch = picture(gen, "sketch").crop(region)
    assert ImageStat.Stat(sketch.convert("L")).mean[0] > 180
    assert ImageStat.Stat(sketch.convert("HSV").getchannel("S")).mean[0] < 40
    # Anime: bold dark outlines; oil painting: a brush texture.
    dark = sum(picture(gen, "anime").convert("L").crop(region).histogram()[:40])
    assert dark > sum(plain.convert("L").crop(region).histogram()[:40]) + 2000
    assert grain(picture(gen, "oil painting")) > grain(plain) + 0.2


def test_the_same_prompt_gives_the_same_bytes(gen: ProceduralImageModel, tmp_path: Path) -> None:
    for style in ("watercolor", "pixel art", "oil painting", "sketch"):
        a = save(gen, frame("a fox in the rain", style=style), tmp_path / "a.png").read_bytes()
        b = save(gen, frame("a fox in the rain", style=style), tmp_path / "b.png").read_bytes()
        assert a == b
