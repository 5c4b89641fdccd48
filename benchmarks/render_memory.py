"""Peak memory of rendering one shot's clip and of joining clips, by frame size and length.

For each size (720p, 1080p, 4K) the keyframes are drawn once with the procedural image
model; then each step runs in a fresh process that measures its own peak resident
memory above what it held just before the step (Linux's VmHWM, reset right before the
step; elsewhere the process's ru_maxrss):

* ``encoder alone`` -- PyAV's libx264 at the clip's settings fed one picture over and
  over: the encoder's own buffers (lookahead, frame threads, reference frames);
* ``render`` -- ``ProceduralVideoModel.generate_single_video``: a pan over the two
  keyframes with a cut and a line of dialogue, drawn, encoded and dropped frame by frame;
* ``join, copy`` -- ``concatenate_videos`` of the clip twice at its own size and rate:
  packets copied, nothing decoded (what the pipeline's editor does now);
* ``join, re-encode`` -- the same two clips decoded and re-encoded frame by frame (what
  the editor did for every join before, and still does for clips encoded differently).

The target: the longer clip raises a step's peak by at most 8 RGB frames over the
shorter one (memory does not grow with the length).

    python benchmarks/render_memory.py [--sizes 1280x720,1920x1080,3840x2160]
        [--seconds 1,4] [--fps 24] [--strict]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _table import print_table

from vimax_nb.pipelines.editing import _reencode_clips, concatenate_videos
from vimax_nb.providers.base import VideoRequest
from vimax_nb.providers.procedural import ProceduralImageModel, ProceduralVideoModel

STEPS = ("encoder alone", "render", "join, copy", "join, re-encode")
ALLOWED_RGB_FRAMES = 8
PROMPT = (
    "Motion: slow pan left across the harbour\n"
    "Dialogue: Mara: We should have left before the tide turned. | Tobin: Then we swim."
)
KEYFRAME = (
    "Style: watercolor\nScene: EXT. HARBOUR - DUSK\nDescription: Mara and Tobin wait on the "
    "pier by a lighthouse while a whale surfaces\nCamera: pan left\nFrame: {frame}"
)


def _status(field: str) -> int | None:
    """A field of /proc/self/status in bytes, or None where there is no /proc."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) * 1024 if found else None


def _measure(action: Callable[[], object]) -> tuple[int, float]:
    """Peak resident memory ``action`` added above the memory held before it (bytes), and
    its wall time."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status("VmRSS") or 0
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    action()
    wall = time.perf_counter() - start
    peak = _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return peak - before, wall


def _encode_alone(folder: Path, size: tuple[int, int], fps: int, seconds: float) -> None:
    import av
    from PIL import Image

    model = ProceduralVideoModel()
    with Image.open(folder / "first.png") as opened:
        picture = opened.convert("RGB")
    with av.open(str(folder / "encoder.mp4"), mode="w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=fps, options={"crf": str(model.crf), "preset": model.preset}
        )
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = Fraction(1, fps)
        frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
        for index in range(max(1, round(seconds * fps))):
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def child(step: str, folder: Path, size: tuple[int, int], fps: int, seconds: float) -> None:
    """Run one step in this (fresh) process and print its peak growth and wall time."""
    clip = folder / f"clip-{seconds:g}s.mp4"
    clips = [clip, clip]
    actions: dict[str, Callable[[], object]] = {
        "encoder alone": lambda: _encode_alone(folder, size, fps, seconds),
        "render": lambda: ProceduralVideoModel().generate_single_video(
            PROMPT,
            [folder / "first.png", folder / "last.png"],
            VideoRequest(clip, size=size, fps=fps, duration=seconds),
        ),
        "join, copy": lambda: concatenate_videos(clips, folder / "joined.mp4", fps=fps, size=size),
        "join, re-encode": lambda: _reencode_clips(
            clips, size[0], size[1], Fraction(fps), folder / "joined.mp4", None
        ),
    }
    growth, wall = _measure(actions[step])
    print(json.dumps({"growth": growth, "wall": wall}))


def run_step(step: str, folder: Path, size: tuple[int, int], fps: int, seconds: float) -> dict:
    args = ["--child", step, "--folder", str(folder), "--fps", str(fps)]
    args += ["--sizes", f"{size[0]}x{size[1]}", "--seconds", f"{seconds:g}"]
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{step} at {size} for {seconds} s failed:\n{done.stderr}")
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1280x720,1920x1080,3840x2160")
    parser.add_argument("--seconds", default="1,4", help="clip lengths, comma-separated")
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    lengths = [float(s) for s in args.seconds.split(",")]
    if args.child:
        child(args.child, args.folder, sizes[0], args.fps, lengths[0])  # type: ignore[arg-type]
        return 0
    mb = 1e6
    rows, missed = [], False
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vimax-render-memory-") as tmp:
        for w, h in sizes:
            folder = Path(tmp) / f"{w}x{h}"
            folder.mkdir()
            painter = ProceduralImageModel()
            for frame in ("first", "last"):
                image = painter.generate_single_image(KEYFRAME.format(frame=frame), [], f"{w}x{h}")
                image.save(folder / f"{frame}.png")
            rgb, yuv = w * h * 3, w * h * 3 // 2
            growths: dict[str, list[float]] = {}
            for seconds in lengths:
                for step in STEPS:
                    result = run_step(step, folder, (w, h), args.fps, seconds)
                    growths.setdefault(step, []).append(result["growth"])
                    rows.append(
                        [
                            f"{w}x{h}",
                            f"{seconds:g} s",
                            str(round(seconds * args.fps)),
                            step,
                            f"{result['growth'] / mb:.0f}",
                            f"{result['growth'] / yuv:.1f}",
                            f"{result['wall']:.1f}",
                            "",
                        ]
                    )
            for step, values in growths.items():
                extra = max(values) - values[0]
                ok = extra <= ALLOWED_RGB_FRAMES * rgb
                missed |= not ok
                rows.append(
                    [
                        f"{w}x{h}",
                        f"{lengths[-1]:g} s - {lengths[0]:g} s",
                        "",
                        step,
                        f"{extra / mb:+.0f}",
                        f"{extra / yuv:+.1f}",
                        "",
                        f"<= {ALLOWED_RGB_FRAMES * rgb / mb:.0f} MB {'PASS' if ok else 'BELOW'}",
                    ]
                )
    print(f"peak resident memory above the step's start, {args.fps} fps; 1 frame = w*h*1.5 bytes")
    print_table(
        ["size", "clip", "frames", "step", "peak MB", "frames'", "wall s", "target"],
        rows,
        right=(2, 4, 5, 6),
    )
    print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
