"""Procedural clips cut from the first frame to the last (no double exposure), dissolve
only when asked, and burn a shot's line of dialogue in as a subtitle."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from vimax_nb.pipelines.models import ShotDescription
from vimax_nb.pipelines.prompts import clip_prompt, dialogue_line, dialogue_lines
from vimax_nb.providers.base import VideoRequest, compose_prompt, parse_prompt
from vimax_nb.providers.procedural import ProceduralVideoModel
from vimax_nb.providers.procedural.video import (
    DISSOLVE_SECONDS,
    last_frame_weight,
    subtitle_overlay,
    subtitle_turns,
    wants_dissolve,
    wrap_text,
)

RED, BLUE, GREY = (220, 30, 30), (30, 30, 220), (100, 100, 100)
NOISE = 24  # the largest codec error allowed on a flat colour, per channel
LONG = (
    "We should have left before the tide turned, and now the boat is gone, the pier is "
    "empty and nobody in this harbour will take us across before morning."
)


def solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (320, 180)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def prompt(motion: str = "static", description: str = "Mara walks", dialogue: str = "") -> str:
    return compose_prompt(
        description=description, motion=motion, style="cinematic", dialogue=dialogue or None
    )


def render(
    tmp_path: Path,
    text: str,
    refs: list[Path],
    *,
    size: tuple[int, int] = (320, 180),
    fps: int = 12,
    duration: float = 2.0,
    name: str = "clip.mp4",
) -> list[Image.Image]:
    request = VideoRequest(tmp_path / name, size=size, fps=fps, duration=duration)
    ProceduralVideoModel().generate_single_video(text, refs, request)
    with av.open(str(request.output_path)) as container:
        return [f.to_image() for f in container.decode(video=0)]


def distance(image: Image.Image, colour: tuple[int, int, int]) -> int:
    """The largest per-channel difference between ``image`` and a flat ``colour``."""
    diff = ImageChops.difference(image.convert("RGB"), Image.new("RGB", image.size, colour))
    return max(high for _, high in diff.getextrema())


def is_red(image: Image.Image) -> bool:
    return distance(image, RED) <= NOISE


def is_blue(image: Image.Image) -> bool:
    return distance(image, BLUE) <= NOISE


@pytest.fixture
def red_blue(tmp_path: Path) -> list[Path]:
    return [solid(tmp_path / "red.png", RED), solid(tmp_path / "blue.png", BLUE)]


# --- the cut -----------------------------------------------------------------------------


@pytest.mark.parametrize("motion", ["static", "pan left", "zoom in", "dolly out"])
def test_no_frame_is_a_double_exposure(tmp_path: Path, red_blue: list[Path], motion: str) -> None:
    frames = render(tmp_path, prompt(motion), red_blue)
    assert len(frames) == 24
    kinds = ["red" if is_red(f) else "blue" if is_blue(f) else "blend" for f in frames]
    assert "blend" not in kinds, kinds
    cut = kinds.index("blue")
    assert kinds == ["red"] * cut + ["blue"] * (24 - cut)  # one cut, never back
    assert abs(cut - 12) <= 1  # near the middle


@pytest.mark.parametrize(("fps", "duration"), [(24, 1.0), (8, 1.5), (10, 0.2), (5, 3.0)])
def test_the_cut_is_near_the_middle_at_any_rate(
    tmp_path: Path, red_blue: list[Path], fps: int, duration: float
) -> None:
    frames = render(tmp_path, prompt("pan right"), red_blue, fps=fps, duration=duration)
    count = round(fps * duration)
    assert len(frames) == count
    cut = (count + 1) // 2  # an odd middle frame still shows the first reference
    assert all(is_red(f) for f in frames[:cut])
    assert all(is_blue(f) for f in frames[cut:])


def test_the_camera_keeps_moving_across_the_cut(tmp_path: Path) -> None:
    ramp = Image.linear_gradient("L").rotate(90).resize((320, 180))
    zero = Image.new("L", (320, 180), 0)
    first, last = tmp_path / "first.png", tmp_path / "last.png"
    Image.merge("RGB", (ramp, zero, zero)).save(first)
    Image.merge("RGB", (zero, zero, ramp)).save(last)
    frames = render(tmp_path, prompt("pan left"), [first, last])
    red = [ImageStat.Stat(f).mean[0] for f in frames[:12]]
    blue = [ImageStat.Stat(f).mean[2] for f in frames[12:]]
    assert all(ImageStat.Stat(f).mean[2] < 20 for f in frames[:12])  # no ghost of the last
    assert all(ImageStat.Stat(f).mean[0] < 20 for f in frames[12:])  # ...nor of the first
    assert abs(red[-1] - red[0]) > 3  # the move runs over the first half...
    assert abs(blue[-1] - blue[0]) > 3  # ...and goes on over the second
    assert (red[-1] - red[0]) * (blue[-1] - blue[0]) > 0  # in the same direction


def test_a_single_reference_is_animated_alone(tmp_path: Path) -> None:
    only = solid(tmp_path / "green.png", (20, 160, 40))
    frames = render(tmp_path, prompt("dissolve, zoom in"), [only], duration=1.0)
    assert len(frames) == 12
    assert all(distance(f, (20, 160, 40)) <= NOISE for f in frames)


# --- the dissolve ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("motion", "description"),
    [
        ("slow dissolve to the pier, pan left", "Mara walks"),
        ("static; cross-fade", "Mara walks"),
        ("zoom in", "Mara fades into the fog"),
    ],
)
def test_a_dissolve_blends_only_a_short_window_around_the_cut(
    tmp_path: Path, red_blue: list[Path], motion: str, description: str
) -> None:
    fps = 24
    frames = render(tmp_path, prompt(motion, description), red_blue, fps=fps)
    assert len(frames) == 48
    blends = [i for i, f in enumerate(frames) if not is_red(f) and not is_blue(f)]
    assert 2 <= len(blends) <= round(DISSOLVE_SECONDS * fps) + 2
    assert blends == list(range(blends[0], blends[-1] + 1))  # one run of frames...
    assert blends[0] <= 24 <= blends[-1] + 1  # ...around the middle
    assert all(is_red(f) for f in frames[: blends[0]])
    assert all(is_blue(f) for f in frames[blends[-1] + 1 :])
    middle = ImageStat.Stat(frames[24]).mean
    assert 60 < middle[0] < 190
    assert 60 < middle[2] < 190


def test_dissolve_words() -> None:
    for text in ("Dissolve to black", "a slow cross-fade", "crossfade", "fade out", "fading"):
        assert wants_dissolve(text), text
    for text in ("pan left", "Mara in faded jeans", "a cut to the pier", ""):
        assert not wants_dissolve(text), text


def test_last_frame_weights() -> None:
    assert [last_frame_weight(i, 6, 12) for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert [last_frame_weight(i, 5, 12) for i in range(5)] == [0, 0, 0, 1, 1]
    assert last_frame_weight(0, 1, 12) == 0.0
    ramp = [last_frame_weight(i, 48, 24, 0.3) for i in range(48)]
    assert ramp == sorted(ramp)
    assert sum(0 < w < 1 for w in ramp) <= 8
    assert ramp[23] + ramp[24] == pytest.approx(1.0)  # centred on the cut


# --- subtitles ---------------------------------------------------------------------------


def test_a_line_of_dialogue_is_burnt_in_at_the_bottom(tmp_path: Path) -> None:
    refs = [solid(tmp_path / "a.png", GREY), solid(tmp_path / "b.png", (90, 110, 90))]
    silent = render(tmp_path, prompt("pan left"), refs, name="silent.mp4")
    spoken = render(
        tmp_path, prompt("pan left", dialogue="Mara: Hello there."), refs, name="spoken.mp4"
    )
    assert len(spoken) == len(silent) == 24
    for before, after in zip(silent, spoken, strict=True):
        band = (0, 150, 320, 180)
        diff = ImageChops.difference(before.crop(band), after.crop(band)).convert("L")
        changed = diff.point(lambda v: 255 if v > 30 else 0).histogram()[255]
        assert changed > 0.5 * 320 * 30  # the dark band with its text, on every frame
        top = ImageChops.difference(before.crop((0, 0, 320, 100)), after.crop((0, 0, 320, 100)))
        assert max(high for _, high in top.getextrema()) <= NOISE  # the picture above is intact
        text = after.crop(band).convert("L").point(lambda v: 255 if v > 200 else 0)
        assert text.histogram()[255] > 40  # white letters on the band


def text_box(frame: Image.Image) -> tuple[int, int, int, int]:
    box = frame.convert("L").point(lambda v: 255 if v > 200 else 0).getbbox()
    assert box is not None, "no subtitle text"
    return box


def test_a_long_line_wraps_within_the_frame(tmp_path: Path) -> None:
    ref = [solid(tmp_path / "grey.png", GREY)]
    short = render(tmp_path, prompt(dialogue="Mara: Hi."), ref, duration=0.25, name="s.mp4")
    long = render(tmp_path, prompt(dialogue=f"Mara: {LONG}"), ref, duration=0.25, name="l.mp4")
    one = text_box(short[0])
    many = text_box(long[-1])
    assert many[0] >= 2
    assert many[2] <= 320 - 2
    assert many[2] - many[0] > 250  # a wide line...
    assert many[3] - many[1] > 2.5 * (one[3] - one[1])  # ...wrapped onto several lines
    assert many[3] <= 180
    assert many[1] > 180 * 0.5
    assert text_box(long[0]) == pytest.approx(many, abs=1)  # the whole clip


def test_subtitles_on_a_still_frame_do_not_pile_up(tmp_path: Path) -> None:
    white = [solid(tmp_path / "white.png", (255, 255, 255))]
    frames = render(tmp_path, prompt(dialogue="Mara: Hold still."), white, duration=1.0)
    first, last = frames[0], frames[-1]
    assert max(high for _, high in ImageChops.difference(first, last).getextrema()) <= NOISE
    # The band is translucent: pasted again on each frame, it would darken to black.
    corner = (0, 170, 20, 180)
    shade = [ImageStat.Stat(f.crop(corner).convert("L")).mean[0] for f in frames]
    assert 12 < shade[0] < 40
    assert max(shade) - min(shade) < 4


def test_several_lines_follow_one_another(tmp_path: Path) -> None:
    ref = [solid(tmp_path / "grey.png", GREY)]
    frames = render(tmp_path, prompt(dialogue="Mara: Hi. | Tobin: Hello, Mara."), ref)
    one = render(tmp_path, prompt(dialogue="Mara: Hi."), ref, duration=0.25, name="one.mp4")
    band = (0, 140, 320, 180)
    early, late = frames[0].crop(band), frames[-1].crop(band)
    assert ImageChops.difference(early, one[0].crop(band)).getextrema()[0][1] <= NOISE
    assert fraction_changed(early, late) > 0.02  # the second line replaced the first
    assert text_box(late)[2] - text_box(late)[0] > text_box(early)[2] - text_box(early)[0]
    turns = subtitle_turns(["Hi.", "Hello, Mara."], 24)
    assert turns == sorted(turns)
    assert 8 <= turns.count(0) <= 11  # (3 + 10) / (3 + 10 + 12 + 10) of the clip
    assert subtitle_turns([], 3) == [0, 0, 0]
    assert subtitle_turns(["only"], 1) == [0]


def fraction_changed(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
    return diff.point(lambda v: 255 if v > 30 else 0).histogram()[255] / (a.width * a.height)


@pytest.mark.parametrize("size", [(320, 180), (640, 360), (1280, 720)])
def test_the_subtitle_band_fits_every_size(size: tuple[int, int]) -> None:
    picture, mask, top = subtitle_overlay(f"Mara: {LONG}", size)
    assert picture.size == mask.size == (size[0], size[1] - top)
    assert size[1] * 0.5 < top < size[1] * 0.85
    assert mask.getextrema() == (232, 255)


def test_wrapping_keeps_every_word_in_order() -> None:
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))

    def measure(s: str) -> float:
        return draw.textlength(s, font_size=12)

    lines = wrap_text(f"Mara: {LONG}", 200, measure)
    assert len(lines) > 2
    assert all(measure(line) <= 200 for line in lines)
    assert " ".join(lines) == f"Mara: {LONG}"
    broken = wrap_text("Supercalifragilisticexpialidocious!", 60, measure)
    assert "".join(broken) == "Supercalifragilisticexpialidocious!"
    assert all(measure(line) <= 60 for line in broken)


# --- the clip prompt ---------------------------------------------------------------------


def shot(audio: str) -> ShotDescription:
    return ShotDescription(
        idx=2,
        is_last=False,
        cam_idx=1,
        visual_desc="Close-up of Mara on the pier.",
        audio_desc=audio,
        variation_type="small",
        ff_desc="Mara looks out to sea",
        lf_desc="Mara turns",
        motion_desc="slow zoom in",
    )


def test_the_clip_prompt_passes_the_line_of_dialogue_verbatim() -> None:
    sections = parse_prompt(clip_prompt(shot('Mara: "We are too late, Tobin."'), "noir"))
    assert sections == {
        "description": "Close-up of Mara on the pier.",
        "motion": "slow zoom in",
        "style": "noir",
        "dialogue": "Mara: We are too late, Tobin.",
    }
    quiet = parse_prompt(clip_prompt(shot("Ambience: gulls and waves."), "noir"))
    assert quiet == {
        "description": "Close-up of Mara on the pier.",
        "motion": "slow zoom in",
        "style": "noir",
    }


def test_dialogue_is_read_from_the_audio_description() -> None:
    assert dialogue_line('Mara: "Hello there."') == ("Mara", "Hello there.")
    assert dialogue_line("MARA: Hello there.") == ("Mara", "Hello there.")
    assert dialogue_line("Old Tom (V.O.): \u201cNot yet.\u201d") == ("Old Tom", "Not yet.")
    assert dialogue_line('Mara: "Go," she says.') == ("Mara", "Go,")
    for audio in ("Ambience: gulls.", "SFX: a bang", 'Sound effects: "boom"', "Rain", ""):
        assert dialogue_line(audio) is None, audio
    assert dialogue_line("Mara: distant music") is None  # not quoted: a description
    assert dialogue_lines('Mara: "Go," she says. Tobin: "No." Ambience: "rain"') == [
        ("Mara", "Go,"),
        ("Tobin", "No."),
    ]


def test_several_lines_of_a_shot_are_all_passed() -> None:
    sections = parse_prompt(clip_prompt(shot('Mara: "Hi." Tobin: "Hello, Mara."'), "noir"))
    assert sections["dialogue"] == "Mara: Hi. | Tobin: Hello, Mara."
