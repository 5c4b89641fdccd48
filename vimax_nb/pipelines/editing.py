"""Editing: join clips into one H.264 MP4, and read a video's basic facts.

Both work on files from any provider. :func:`concatenate_videos` copies the clips'
packets when they were all encoded alike at the output's size and rate (every
procedural clip of one workflow): no decoding, the pictures stay exactly as rendered,
and memory holds one packet. Otherwise it decodes every clip and re-encodes, one frame
at a time, scaling to one size and resampling to one frame rate, so clips of different
sizes, rates or codecs can be joined. Audio is not carried over.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image, ImageOps

from ..providers.base import PathLike
from ..shared import CancelToken, TaskCanceled

#: x264 settings for joined videos: visually fine, fast to encode.
CRF = 23
PRESET = "veryfast"


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """A video's first video stream: frame size, rate (frames per second), frame count,
    duration in seconds and codec name (``"h264"``)."""

    width: int
    height: int
    fps: float
    frames: int
    duration: float
    codec: str


def _check(token: CancelToken | None) -> None:
    if token is not None and token.cancelled:
        raise TaskCanceled("joining the clips was canceled")


def _rate(stream: VideoStream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate).limit_denominator(1001) if rate else None


def probe_video(path: PathLike, *, decode: bool = False) -> VideoInfo:
    """The facts of the video at ``path``.

    ``frames`` comes from the container's frame count when it has one, else (or with
    ``decode=True``) from decoding every frame; ``duration`` from the stream's
    duration when known, else the container's, else ``frames / fps``. Raises
    ValueError if the file is missing, unreadable or has no video stream.
    """
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"there is no video file at {str(source)!r}")
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise ValueError(f"{str(source)!r} has no video stream")
            stream = container.streams.video[0]
            rate = _rate(stream)
            fps = float(rate) if rate else 0.0
            frames = stream.frames
            if decode or frames <= 0:
                frames = sum(1 for _ in container.decode(stream))
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / av.time_base
            else:
                duration = frames / fps if fps else 0.0
            ctx = stream.codec_context
            return VideoInfo(ctx.width, ctx.height, fps, frames, duration, ctx.name)
    except av.FFmpegError as exc:
        raise ValueError(f"cannot read the video {str(source)!r}: {exc}") from None


def _frames_at_rate(
    source: Path, rate: Fraction, token: CancelToken | None
) -> Iterator[VideoFrame]:
    """The clip's frames resampled to ``rate``: output frame ``k`` shows the input frame
    on screen at the middle of its interval, and the clip keeps its length (to the
    nearest output frame). At equal rates every input frame is used exactly once."""
    step = 1 / rate
    emitted = 0
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise ValueError(f"the clip {str(source)!r} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            in_rate = _rate(stream) or rate
            time_base = stream.time_base or 1 / in_rate
            shown: VideoFrame | None = None
            start = now = Fraction(0)
            for index, frame in enumerate(container.decode(stream)):
                _check(token)
                if frame.pts is None:
                    now = index / in_rate
                else:
                    now = frame.pts * time_base
                    start = now if shown is None else start
                    now -= start
                while shown is not None and emitted * step < now - step / 2:
                    emitted += 1
                    yield shown
                shown = frame
    except av.FFmpegError as exc:
        raise ValueError(f"cannot decode the clip {str(source)!r}: {exc}") from None
    if shown is None:
        raise ValueError(f"the clip {str(source)!r} has no frames")
    end = now + 1 / in_rate
    while emitted * step < end - step / 2:
        emitted += 1
        yield shown


def _scaled(frame: VideoFrame, width: int, height: int) -> VideoFrame:
    """``frame`` as yuv420p at ``width`` x ``height``; a different aspect ratio is
    cropped around the centre rather than stretched."""
    if abs(frame.width * height - frame.height * width) > max(width, height):
        picture: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
        image = ImageOps.fit(picture, (width, height), Image.Resampling.BILINEAR)
        frame = VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
    return frame.reformat(width=width, height=height, format="yuv420p")


@dataclass(frozen=True, slots=True)
class _CopyableClip:
    """A clip whose packets can be copied into the joined video: its encoding (size,
    time base, ticks per frame, codec parameters and profile), its packets' first
    presentation time, first and last decode times, and its length, all in time base
    ticks."""

    encoding: tuple[object, ...]
    first_pts: int
    first_dts: int
    last_dts: int
    length: int


def _copyable(
    source: Path, width: int, height: int, rate: Fraction, token: CancelToken | None
) -> _CopyableClip | None:
    """``source`` as a clip to copy, or None when it must be decoded: it must be H.264
    yuv420p at ``width`` x ``height``, start on a key frame, and show one frame every
    ``1 / rate`` seconds exactly (constant rate, no gap). Reads packets, decodes none."""
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            ctx = stream.codec_context
            tb = stream.time_base
            if (ctx.name, ctx.width, ctx.height, ctx.pix_fmt) != ("h264", width, height, "yuv420p"):
                return None
            if tb is None or (1 / rate / tb).denominator != 1:
                return None
            step = int(1 / rate / tb)
            encoding = (width, height, tb, step, bytes(ctx.extradata or b""), ctx.profile)
            pts: list[int] = []
            dts: list[int] = []
            for packet in container.demux(stream):
                _check(token)
                if packet.size == 0:
                    continue
                if packet.pts is None or packet.dts is None or (not dts and not packet.is_keyframe):
                    return None
                pts.append(packet.pts)
                dts.append(packet.dts)
    except av.FFmpegError:
        return None  # the decoding path reports what is wrong with the clip
    if not pts or any(b <= a for a, b in pairwise(dts)):
        return None
    start = min(pts)
    if sorted(pts) != list(range(start, start + step * len(pts), step)):
        return None
    return _CopyableClip(encoding, start, dts[0], dts[-1], step * len(pts))


def _copy_plan(
    sources: Sequence[Path], width: int, height: int, rate: Fraction, token: CancelToken | None
) -> list[_CopyableClip] | None:
    """The clips to copy one after the other, or None unless every clip can be copied:
    all encoded alike (same codec parameters) and, once each is moved to start where the
    previous one ends, decode times still rising across every join."""
    plan: list[_CopyableClip] = []
    end = 0
    last_dts: int | None = None
    for source in sources:
        clip = _copyable(source, width, height, rate, token)
        if clip is None or (plan and clip.encoding != plan[0].encoding):
            return None
        shift = end - clip.first_pts
        if last_dts is not None and clip.first_dts + shift <= last_dts:
            return None
        plan.append(clip)
        last_dts = clip.last_dts + shift
        end += clip.length
    return plan


def concatenate_videos(
    paths: Sequence[PathLike],
    output_path: PathLike,
    *,
    cancel_token: CancelToken | None = None,
    fps: int | None = None,
    size: tuple[int, int] | None = None,
) -> Path:
    """Join the clips in order into one H.264 (yuv420p, MP4) video at ``output_path``.

    The video is at ``size`` and ``fps`` (default: the first clip's size, rounded down
    to even numbers, and rate); frame times are continuous and each clip keeps its
    length. When every clip is already H.264 yuv420p at that size and rate, constant
    rate, starting on a key frame, and all share their codec parameters, their packets
    are copied (each clip's pictures unchanged, memory bounded by one packet); otherwise
    every clip is decoded and re-encoded one frame at a time (memory bounded by a few
    frames and the encoder's buffers, whatever the length). The video is written to
    ``<name>.part`` and renamed, so ``output_path`` only ever holds a complete file.
    When ``cancel_token`` is set (checked before every frame or packet) the part file
    is removed and
    :class:`TaskCanceled` raised. Raises ValueError for no clips, a missing or
    unreadable clip, or an invalid size or rate. Returns ``output_path``.
    """
    sources = [Path(p) for p in paths]
    if not sources:
        raise ValueError("there are no clips to join")
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise ValueError(f"cannot join clips that do not exist: {', '.join(missing)}")
    if fps is not None and fps <= 0:
        raise ValueError(f"the frame rate must be positive (got {fps})")
    if size is not None and (min(size) < 16 or size[0] % 2 or size[1] % 2):
        raise ValueError(f"the size must be even and at least 16x16 (got {size[0]}x{size[1]})")
    _check(cancel_token)
    first = probe_video(sources[0])
    width, height = size or (first.width - first.width % 2, first.height - first.height % 2)
    rate = Fraction(fps) if fps else Fraction(first.fps).limit_denominator(1001)
    if rate <= 0 or min(width, height) < 16:
        raise ValueError(f"cannot tell the size and rate of {str(sources[0])!r}")
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".part")
    try:
        plan = _copy_plan(sources, width, height, rate, cancel_token)
        if plan is not None:
            _copy_clips(sources, plan, partial, cancel_token)
        else:
            _reencode_clips(sources, width, height, rate, partial, cancel_token)
        _check(cancel_token)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return output


def _copy_clips(
    sources: Sequence[Path], plan: Sequence[_CopyableClip], partial: Path, token: CancelToken | None
) -> None:
    """Write the packets of ``sources`` (as planned by :func:`_copy_plan`) one after the
    other into ``partial``, each clip moved to start where the previous one ends."""
    with av.open(str(partial), mode="w", format="mp4") as container:
        stream: VideoStream | None = None
        end = 0
        for source, clip in zip(sources, plan, strict=True):
            with av.open(str(source)) as clip_container:
                clip_stream = clip_container.streams.video[0]
                if stream is None:
                    stream = container.add_stream_from_template(clip_stream)
                shift = end - clip.first_pts
                for packet in clip_container.demux(clip_stream):
                    _check(token)
                    if packet.size == 0 or packet.pts is None or packet.dts is None:
                        continue
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                    packet.stream = stream
                    container.mux(packet)
            end += clip.length


def _reencode_clips(
    sources: Sequence[Path],
    width: int,
    height: int,
    rate: Fraction,
    partial: Path,
    token: CancelToken | None,
) -> None:
    """Decode ``sources`` one frame at a time, scale and resample them to ``width`` x
    ``height`` at ``rate``, and encode them into ``partial``."""
    with av.open(str(partial), mode="w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=rate, options={"crf": str(CRF), "preset": PRESET}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = 1 / rate
        index = 0
        for source in sources:
            for frame in _frames_at_rate(source, rate, token):
                out = _scaled(frame, width, height)
                out.pts, out.time_base, out.pict_type = index, 1 / rate, 0
                index += 1
                container.mux(stream.encode(out))
        container.mux(stream.encode(None))
