"""Make the contact sheets of docs/gallery/ from the 20 ideas and scripts of
tests/data/depiction.json: for each run, its shots' first frames side by side, small.

    python docs/gallery/make_gallery.py

Runs offline (procedural providers) in a temporary folder; writes ideas.png and
scripts.png next to this file.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from vimax_nb.coordinator import Coordinator
from vimax_nb.pipelines import register_vimax

HERE = Path(__file__).resolve().parent
DATA = json.loads((HERE.parents[1] / "tests" / "data" / "depiction.json").read_text())
PARAMS = {"shots_per_scene": 2, "width": 320, "height": 180, "fps": 4, "seconds_per_shot": 1}
THUMB = (160, 90)
PER_ROW = 4


async def frames_of(runs: list[tuple[str, dict[str, Any]]], workdir: Path) -> list[list[Path]]:
    coordinator = Coordinator(workdir=workdir)
    register_vimax(coordinator)
    await coordinator.start()
    try:
        folders = []
        for kind, params in runs:
            record = await coordinator.submit(kind, {**PARAMS, **params})
            done = await coordinator.wait(record.id, timeout=300)
            folders.append(workdir / done.id)
    finally:
        await coordinator.stop()
    return [sorted(f.rglob("first_frame.png"))[:PER_ROW] for f in folders]


def sheet(titles: list[str], frames: list[list[Path]], target: Path) -> None:
    label = 14
    w, h = THUMB
    columns = max(len(paths) for paths in frames)
    image = Image.new("RGB", (columns * w, len(frames) * (h + label)), "white")
    draw = ImageDraw.Draw(image)
    for row, (title, paths) in enumerate(zip(titles, frames, strict=True)):
        y = row * (h + label)
        draw.text((2, y + 1), title[:70], fill="black")
        for col, path in enumerate(paths):
            with Image.open(path) as frame:
                image.paste(frame.convert("RGB").resize(THUMB), (col * w, y + label))
    image.save(target, optimize=True)


def main() -> None:
    ideas = [("idea2video", {"idea": c["idea"]}) for c in DATA["ideas"]]
    scripts = [
        ("script2video", {"script": c["script"], "scenes": len(c["scenes"])})
        for c in DATA["scripts"]
    ]
    with tempfile.TemporaryDirectory() as tmp:
        idea_frames = asyncio.run(frames_of(ideas, Path(tmp) / "ideas"))
        script_frames = asyncio.run(frames_of(scripts, Path(tmp) / "scripts"))
        sheet([c["idea"] for c in DATA["ideas"]], idea_frames, HERE / "ideas.png")
        heads = [c["script"].split("\n")[0] for c in DATA["scripts"]]
        sheet(heads, script_frames, HERE / "scripts.png")
    print(f"wrote {HERE / 'ideas.png'} and {HERE / 'scripts.png'}")


if __name__ == "__main__":
    main()
