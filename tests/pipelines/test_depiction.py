"""What a person sees in the offline film: for 10 ideas and 10 scripts
(``tests/data/depiction.json``), the things each names are drawn, scenes are inside or
outside as their headings say, and every line of dialogue reaches a shot verbatim.

The procedural renderer reports what it placed in each PNG (``placed_drawables``);
the assertions read those reports and the shot descriptions the pipeline wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.protocol import WorkflowState
from vimax_nb.providers.procedural.images import placed_drawables

from .fakes import vimax

DATA = json.loads((Path(__file__).parents[1] / "data" / "depiction.json").read_text())
TINY = {"shots_per_scene": 2, "width": 256, "height": 144, "fps": 4, "seconds_per_shot": 1}

pytestmark = pytest.mark.timeout(300)


def drawn_in(folder: Path) -> set[str]:
    """Everything the frames and portraits under ``folder`` report drawing: props,
    places and creatures (characters drawn as an animal count as that animal)."""
    seen: set[str] = set()
    for png in folder.rglob("*.png"):
        report: dict[str, Any] = placed_drawables(png)  # type: ignore[assignment]
        seen.update(report.get("drawables", []))
        seen.update(v for v in report.get("characters", {}).values() if v != "person")
        if report.get("figure") not in (None, "person"):
            seen.add(report["figure"])
    return seen


def frame_reports(scene: Path) -> list[dict[str, Any]]:
    return [placed_drawables(p) for p in sorted(scene.glob("shots/*/*_frame.png"))]  # type: ignore[misc]


async def film(workdir: Path, kind: str, params: dict[str, Any]) -> Path:
    async with vimax(workdir) as (coordinator, _):
        record = await coordinator.submit(kind, {**TINY, **params})
        done = await coordinator.wait(record.id, timeout=120)
    assert done.state == WorkflowState.completed, done.message
    return workdir / done.id


@pytest.mark.parametrize("case", DATA["ideas"], ids=lambda c: c["idea"][:30])
async def test_an_ideas_things_are_drawn(tmp_path: Path, case: dict[str, Any]) -> None:
    folder = await film(tmp_path, "idea2video", {"idea": case["idea"]})
    missing = set(case["drawn"]) - drawn_in(folder)
    assert not missing, f"{case['idea']!r}: never drawn: {sorted(missing)}"


@pytest.mark.parametrize("case", DATA["scripts"], ids=lambda c: c["script"].split("\n")[0])
async def test_a_scripts_scenes_places_and_lines_are_kept(
    tmp_path: Path, case: dict[str, Any]
) -> None:
    scenes = case["scenes"]
    folder = await film(tmp_path, "script2video", {"script": case["script"], "scenes": len(scenes)})
    for index, expected in enumerate(scenes):
        scene = folder if len(scenes) == 1 else folder / f"scene_{index}"
        reports = frame_reports(scene)
        assert reports, f"scene {index} has no frames"
        assert {r.get("setting") for r in reports} == {expected["setting"]}, index
        missing = (
            set(expected["drawn"]) - drawn_in(scene) - drawn_in(folder / "character_portraits")
        )
        assert not missing, f"scene {index}: never drawn: {sorted(missing)}"

    said = "\n".join(
        json.loads(p.read_text())["audio_desc"] for p in folder.rglob("shot_description.json")
    )
    lines = re.findall(r'^[A-Z][A-Z0-9 -]*(?: \([^)]*\))?: "([^"]+)"', case["script"], re.M)
    assert lines
    for line in lines:
        assert said.count(line) == 1, f"{line!r} is not in exactly one shot"
