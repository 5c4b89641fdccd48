"""Joining clips and probing videos."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image, ImageStat

from vimax_nb.pipelines.editing import VideoInfo, concatenate_videos, probe_video
from vimax_nb.shared import CancelToken, TaskCanceled

RED, GREEN, BLUE = (200, 30, 30), (30, 200, 30), (30, 30, 200)


def write_clip(
    path: Path,
    colour: tuple[int, int, int],
    frames: int,
    *,
    size: tuple[int, int] = (320, 180),
    fps: int = 12,
    codec: str = "libx264",
) -> Path:
    """A clip of one colour written straight with PyAV (any codec, as another provider would)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = Fraction(1, fps)
        for index in range(frames):
            frame = av.VideoFrame.from_image(Image.new("RGB", size, colour))
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def colours(path: Path) -> list[tuple[float, ...]]:
    """The mean colour of every frame."""
    with av.open(str(path)) as container:
        return [tuple(ImageStat.Stat(f.to_image()).mean) for f in container.decode(video=0)]


def near(colour: tuple[float, ...], target: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 20 for a, b in zip(colour, target, strict=True))


class CancelAfter(CancelToken):
    """A token that turns itself on at its ``checks``-th look."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.left = checks

    @property
    def cancelled(self) -> bool:
        self.left -= 1
        if self.left == 0:
            self.cancel()
        return super().cancelled


def test_three_clips_join_end_to_end(tmp_path: Path) -> None:
    clips = [
        write_clip(tmp_path / "a.mp4", RED, 12),
        write_clip(tmp_path / "b.mp4", GREEN, 18),
        write_clip(tmp_path / "c.mp4", BLUE, 6),
    ]
    out = concatenate_videos(clips, tmp_path / "out" / "final.mp4")
    assert out == tmp_path / "out" / "final.mp4"
    info = probe_video(out, decode=True)
    assert (info.width, info.height, info.frames, info.codec) == (320, 180, 36, "h264")
    assert info.fps == pytest.approx(12.0)
    assert info.duration == pytest.approx(3.0, abs=1 / 12)
    means = colours(out)
    assert all(near(c, RED) for c in means[:12])
    assert all(near(c, GREEN) for c in means[12:30])
    assert all(near(c, BLUE) for c in means[30:])
    assert not list(out.parent.glob("*.part"))


def test_clips_of_other_sizes_rates_and_codecs_are_scaled_and_resampled(tmp_path: Path) -> None:
    clips = [
        write_clip(tmp_path / "a.mp4", RED, 12),  # 1 s at 12 fps, 320x180
        write_clip(tmp_path / "b.mp4", GREEN, 24, size=(640, 360), fps=24),  # 1 s
        write_clip(tmp_path / "c.mp4", BLUE, 6, size=(160, 120), fps=6, codec="mpeg4"),  # 1 s
    ]
    out = concatenate_videos(clips, tmp_path / "final.mp4")
    info = probe_video(out, decode=True)
    assert (info.width, info.height, info.frames) == (320, 180, 36)
    assert info.duration == pytest.approx(3.0, abs=1 / 12)
    means = colours(out)
    assert near(means[11], RED)
    assert near(means[12], GREEN)
    assert near(means[23], GREEN)
    assert near(means[24], BLUE)


def test_a_given_size_and_rate_win(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / "a.mp4", RED, 12), write_clip(tmp_path / "b.mp4", BLUE, 24)]
    out = concatenate_videos(clips, tmp_path / "final.mp4", fps=6, size=(160, 90))
    info = probe_video(out, decode=True)
    assert (info.width, info.height, info.frames) == (160, 90, 18)
    assert info.fps == pytest.approx(6.0)
    assert info.duration == pytest.approx(3.0, abs=1 / 6)


def test_joining_four_clips_is_fast(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / f"{i}.mp4", RED, 24, size=(640, 360)) for i in range(4)]
    start = time.perf_counter()
    concatenate_videos(clips, tmp_path / "final.mp4")
    assert time.perf_counter() - start < 5.0  # about 0.3 s here; slack for slow CI
    assert probe_video(tmp_path / "final.mp4").frames == 96


def test_a_cancel_leaves_nothing_and_keeps_an_older_video(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / "a.mp4", RED, 12), write_clip(tmp_path / "b.mp4", BLUE, 12)]
    before = sorted(p.name for p in tmp_path.iterdir())
    token = CancelToken()
    token.cancel()
    with pytest.raises(TaskCanceled):
        concatenate_videos(clips, tmp_path / "final.mp4", cancel_token=token)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(TaskCanceled):
        concatenate_videos(clips, tmp_path / "final.mp4", cancel_token=CancelAfter(18))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    old = tmp_path / "old.mp4"
    old.write_bytes(b"an older video")
    with pytest.raises(TaskCanceled):
        concatenate_videos(clips, old, cancel_token=CancelAfter(18))
    assert old.read_bytes() == b"an older video"
    assert not list(tmp_path.glob("*.part"))


def test_bad_inputs_are_value_errors(tmp_path: Path) -> None:
    good = write_clip(tmp_path / "a.mp4", RED, 4)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="no clips"):
        concatenate_videos([], tmp_path / "out.mp4")
    with pytest.raises(ValueError, match=r"missing\.mp4"):
        concatenate_videos([good, tmp_path / "missing.mp4"], tmp_path / "out.mp4")
    with pytest.raises(ValueError, match=r"junk\.mp4"):
        concatenate_videos([good, junk], tmp_path / "out.mp4")
    with pytest.raises(ValueError, match=r"junk\.mp4"):
        concatenate_videos([junk, good], tmp_path / "out.mp4")
    with pytest.raises(ValueError, match="even"):
        concatenate_videos([good], tmp_path / "out.mp4", size=(321, 180))
    with pytest.raises(ValueError, match="positive"):
        concatenate_videos([good], tmp_path / "out.mp4", fps=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "junk.mp4"]


def test_probe_video_reads_the_facts(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.mp4", RED, 10, size=(160, 90), fps=5)
    assert probe_video(clip) == VideoInfo(160, 90, 5.0, 10, 2.0, "h264")
    assert probe_video(clip, decode=True) == probe_video(clip)
    with pytest.raises(ValueError, match="no video file"):
        probe_video(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read"):
        probe_video(tmp_path / "junk.mp4")


def pictures(path: Path) -> list[bytes]:
    """Every decoded picture's yuv420p planes, exactly."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p").tobytes() for f in container.decode(video=0)]


SHOTS = [("pan left", 1.0), ("zoom in", 1.5), ("static", 0.5)]


def test_clips_encoded_alike_are_joined_without_losing_quality(tmp_path: Path) -> None:
    from vimax_nb.providers.base import VideoRequest
    from vimax_nb.providers.procedural import ProceduralVideoModel

    first = tmp_path / "first.png"
    Image.radial_gradient("L").resize((320, 180)).convert("RGB").save(first)
    model = ProceduralVideoModel()
    clips = [
        model.generate_single_video(
            f"Motion: {motion}\nDialogue: Mara: line {i}",
            [first],
            VideoRequest(tmp_path / f"{i}.mp4", size=(320, 180), fps=12, duration=seconds),
        )
        for i, (motion, seconds) in enumerate(
            [("pan left", 1.0), ("zoom in", 1.5), ("static", 0.5)]
        )
    ]
    out = concatenate_videos(clips, tmp_path / "final.mp4", fps=12, size=(320, 180))
    assert pictures(out) == [p for clip in clips for p in pictures(clip)]
    info = probe_video(out, decode=True)
    assert (info.frames, info.fps, info.duration) == (36, 12.0, pytest.approx(3.0))


def test_a_clip_with_a_missing_frame_time_keeps_its_length(tmp_path: Path) -> None:
    gappy = tmp_path / "gappy.mp4"  # 12 fps, frames at 0..4 and 7..11: two frame times empty
    with av.open(str(gappy), mode="w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.time_base = Fraction(1, 12)
        for index in [*range(5), *range(7, 12)]:
            frame = av.VideoFrame.from_image(Image.new("RGB", (320, 180), GREEN))
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    clips = [write_clip(tmp_path / "a.mp4", RED, 12), gappy]
    out = concatenate_videos(clips, tmp_path / "final.mp4")
    info = probe_video(out, decode=True)
    assert (info.frames, info.duration) == (24, pytest.approx(2.0, abs=1 / 12))
    assert all(near(c, GREEN) for c in colours(out)[12:])


def test_clips_encoded_differently_are_still_joined(tmp_path: Path) -> None:
    other = tmp_path / "b.mp4"  # the same size, rate and codec, other encoder settings
    with av.open(str(other), mode="w") as container:
        stream = container.add_stream("libx264", rate=12, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.time_base = Fraction(1, 12)
        for index in range(12):
            frame = av.VideoFrame.from_image(Image.new("RGB", (320, 180), BLUE))
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = concatenate_videos([write_clip(tmp_path / "a.mp4", RED, 12), other], tmp_path / "f.mp4")
    means = colours(out)
    assert len(means) == 24
    assert all(near(c, RED) for c in means[:12])
    assert all(near(c, BLUE) for c in means[12:])
