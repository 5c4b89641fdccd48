"""Rendering a clip and joining clips hold a few frames at a time, however long the video.

Each case runs in a fresh process that measures its own peak resident memory (Linux's
VmHWM, reset before each measured step) while it renders or joins a short video and
then one five times as long. Frames drawn, decoded or encoded are dropped as soon as
they are written, so the longer video may not raise the peak by more than a few
frames; a render that kept its frames (as Pillow images, PyAV frames or arrays) would
raise it by about one frame per extra frame. (The short video is long enough to fill the
encoder's and decoder's own buffers, which do not grow after that.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SIZE = (640, 360)
SHORT, LONG = 48, 240  # frames
#: What the longer video may add to the peak: 32 RGB frames of SIZE, about 21 MiB; a
#: render that held its frames would add 192 (about 63 MiB as yuv420p, 127 MiB as RGB).
ALLOWED_GROWTH = 32 * SIZE[0] * SIZE[1] * 3

CHILD = r"""
import gc, json, re, sys, tempfile
from pathlib import Path
from PIL import Image
from vimax_nb.pipelines.editing import concatenate_videos
from vimax_nb.providers.base import VideoRequest
from vimax_nb.providers.procedural import ProceduralVideoModel

step, size = sys.argv[1], tuple(json.loads(sys.argv[2]))
short, long = int(sys.argv[3]), int(sys.argv[4])
FPS = 24
folder = Path(tempfile.mkdtemp())
refs = [folder / "first.png", folder / "last.png"]
Image.radial_gradient("L").resize(size).convert("RGB").save(refs[0])
Image.linear_gradient("L").resize(size).convert("RGB").save(refs[1])
model = ProceduralVideoModel()
PROMPT = "Motion: pan left\nDialogue: Mara: We should have left before the tide turned."

def status(field):
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024

def clip(name, frames):
    path = folder / name
    request = VideoRequest(path, size=size, fps=FPS, duration=frames / FPS)
    model.generate_single_video(PROMPT, refs, request)
    return path

def peak_growth(frames):
    if step == "render":
        action = lambda: clip("measured.mp4", frames)
    else:
        clips = [clip(f"{frames}-{i}.mp4", frames) for i in range(2)]
        rate = FPS if step == "join-copy" else FPS // 2  # another rate: decoded and re-encoded
        action = lambda: concatenate_videos(clips, folder / "joined.mp4", fps=rate, size=size)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    before = status("VmRSS")
    action()
    return status("VmHWM") - before

peak_growth(short), peak_growth(short)  # libraries, caches and pools warmed up
print(json.dumps({"short": peak_growth(short), "long": peak_growth(long)}))
"""


def peak_growths(step: str) -> dict[str, int]:
    """Peak memory growth (bytes) of ``step`` on a SHORT and a LONG video, in a fresh process."""
    args = [step, json.dumps(SIZE), str(SHORT), str(LONG)]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux's /proc"
)
@pytest.mark.parametrize("step", ["render", "join-copy", "join-reencode"])
def test_a_longer_video_does_not_hold_more_frames(step: str) -> None:
    growth = peak_growths(step)
    extra = growth["long"] - growth["short"]
    mib = 1024 * 1024
    assert extra < ALLOWED_GROWTH, (
        f"{step}: a {LONG}-frame video raised peak memory {extra / mib:.1f} MiB more than a "
        f"{SHORT}-frame one (allowed {ALLOWED_GROWTH / mib:.1f} MiB): frames are being kept "
        f"({growth['short'] / mib:.1f} MiB for {SHORT} frames, {growth['long'] / mib:.1f} for "
        f"{LONG})"
    )
