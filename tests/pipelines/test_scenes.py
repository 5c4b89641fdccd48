"""Script2Video makes every scene of its script unless told otherwise, and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vimax_nb.pipelines.params import (
    MAX_SCENES,
    OFFLINE_STYLES,
    Idea2VideoParams,
    Script2VideoParams,
)
from vimax_nb.pipelines.script2video import (
    Script2VideoPipeline,
    count_scenes,
    scenes_notice,
    split_scenes,
)
from vimax_nb.protocol import WorkflowState
from vimax_nb.providers import ProviderCatalog
from vimax_nb.providers.procedural.palettes import _STYLES

from .fakes import SMALL, vimax

THREE = """INT. LIGHTHOUSE - NIGHT
MARA climbs the stairs.

EXT. SHORE - DAWN
Mara runs to the water.

SCENE 3: The harbour
Olin waves from the pier.
"""


def pipeline(tmp_path: Path) -> Script2VideoPipeline:
    return Script2VideoPipeline(tmp_path, ProviderCatalog({}))


def storyboards(pipe: Script2VideoPipeline, params: dict[str, object]) -> list[str]:
    return [s.key for s in pipe.plan(params) if s.skill == "design_storyboard"]


def test_the_script_headings_decide_the_scenes_when_scenes_is_not_given(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    for given in ({}, {"scenes": None}, {"scenes": 0}):
        params = pipe.validate({"script": THREE, **given})
        assert params["scenes"] == 3
        assert pipe.notice(params) == ""
        assert len(storyboards(pipe, params)) == 3
    plain = pipe.validate({"script": "A fox looks at the moon."})
    assert plain["scenes"] == 1
    assert Script2VideoParams(script=THREE).scenes == 0  # 0: as many as the script has


def test_fewer_scenes_than_the_script_has_are_made_and_said(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    params = pipe.validate({"script": THREE, "scenes": 1})
    assert params["scenes"] == 1
    assert len(storyboards(pipe, params)) == 1
    assert pipe.notice(params) == (
        "the script has 3 scenes; making 1 (scenes=1): scenes 2 and 3 join scene 1"
    )
    assert scenes_notice(THREE, 2) == (
        "the script has 3 scenes; making 2 (scenes=2): scene 3 joins scene 2"
    )
    assert scenes_notice(THREE, 5) == ""
    (only,) = split_scenes(THREE, 1)
    assert "Olin waves" in only.script  # nothing of the script is lost


def test_more_headings_than_the_maximum_make_the_maximum_and_say_so(tmp_path: Path) -> None:
    script = "\n".join(f"INT. ROOM {n} - DAY\nSomeone waits.\n" for n in range(1, 13))
    assert count_scenes(script) == 12
    pipe = pipeline(tmp_path)
    params = pipe.validate({"script": script})
    assert params["scenes"] == MAX_SCENES
    assert len(storyboards(pipe, params)) == MAX_SCENES
    assert pipe.notice(params) == (
        "the script has 12 scenes; making 10 (the most a workflow makes): "
        "scenes 11 and 12 join scene 10"
    )
    with pytest.raises(ValidationError):
        pipe.validate({"script": script, "scenes": 11})


def test_idea2video_keeps_one_scene_by_default() -> None:
    assert Idea2VideoParams(idea="A fox").scenes == 1
    with pytest.raises(ValidationError):
        Idea2VideoParams(idea="A fox", scenes=0)


def test_the_documented_offline_styles_are_the_renderers() -> None:
    assert set(OFFLINE_STYLES) == set(_STYLES)
    description = Script2VideoParams.model_fields["style"].description or ""
    assert all(style in description for style in OFFLINE_STYLES)
    assert Script2VideoParams(script="x", style="banana").style == "banana"  # free text


async def test_a_script_with_three_headings_makes_three_scenes_and_one_says_so(
    tmp_path: Path,
) -> None:
    async with vimax(tmp_path) as (coordinator, recorder):
        small = {**SMALL, "shots_per_scene": 1}
        every = await coordinator.submit("script2video", {"script": THREE, **small})
        one = await coordinator.submit("script2video", {"script": THREE, **small, "scenes": 1})
        done = await coordinator.wait(every.id, timeout=120)
        done_one = await coordinator.wait(one.id, timeout=120)
    assert done.state == done_one.state == WorkflowState.completed, done.message
    assert every.params["scenes"] == 3
    assert all((tmp_path / every.id / f"scene_{i}").is_dir() for i in range(3))
    assert not (tmp_path / one.id / "scene_0").exists()  # one scene: no scene folder
    first = recorder.progress(every.id)[0]
    assert first.message == "queued"
    said = [p.message for p in recorder.progress(one.id) if p.details.event == "state"]
    notice = "the script has 3 scenes; making 1 (scenes=1): scenes 2 and 3 join scene 1"
    assert said[:2] == [f"queued: {notice}", f"started: {notice}"]
