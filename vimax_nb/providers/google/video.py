"""The Veo video model: :class:`GoogleVideoModel`, image-to-video through a long-running
``generate_videos`` operation (Vertex AI ``:predictLongRunning``, polled with
``:fetchPredictOperation``) that a later attempt resumes instead of paying again (see
:mod:`vimax_nb.providers.google`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.genai import errors as genai_errors
from google.genai import types

from ..base import PathLike, ProviderCall, ProviderError, Usage, VideoRequest
from ..jobs import wait_for_job
from ..media import read_reference, save_clip
from .client import GoogleModel
from .config import PROVIDER
from .errors import SDK_ERRORS

__all__ = ["VEO_FAMILIES", "GoogleVideoModel", "VeoFamily", "veo_duration", "veo_family"]


@dataclass(frozen=True, slots=True)
class VeoFamily:
    """What the Veo models whose name starts with ``prefix`` accept: clip lengths in
    seconds, a last frame (``GenerateVideosConfig.last_frame``), ``generate_audio``."""

    prefix: str
    durations: tuple[int, ...]
    last_frame: bool
    audio: bool


#: The known families, most specific prefix first.
VEO_FAMILIES = (
    VeoFamily("veo-3.1", (4, 6, 8), last_frame=True, audio=True),
    VeoFamily("veo-3", (4, 6, 8), last_frame=False, audio=True),
    VeoFamily("veo-2", (5, 6, 7, 8), last_frame=True, audio=False),
)
#: Any other model: the first frame only, and no audio parameter.
_OTHER = VeoFamily("", (4, 6, 8), last_frame=False, audio=False)

#: Operation error codes (google.rpc.Code) worth another attempt: INTERNAL, UNAVAILABLE.
_TRANSIENT_CODES = (13, 14)


def veo_family(model: str) -> VeoFamily:
    """The family of ``model`` (a bare id or a ``publishers/google/models/...`` name)."""
    name = model.rsplit("/", 1)[-1]
    return next((f for f in VEO_FAMILIES if name.startswith(f.prefix)), _OTHER)


def veo_duration(seconds: float, family: VeoFamily) -> int:
    """The shortest length ``family`` accepts that is at least ``seconds`` long (the
    longest when none is)."""
    wanted = math.ceil(seconds - 1e-6)
    return next((d for d in family.durations if d >= wanted), family.durations[-1])


def _image(path: PathLike) -> types.Image:
    reference = read_reference(path, PROVIDER)
    return types.Image(image_bytes=reference.data, mime_type=reference.mime_type)


class GoogleVideoModel(GoogleModel):
    """A :class:`~vimax_nb.providers.base.VideoModel` on Veo (Vertex AI mode only).

    The clip is whatever Veo makes: 24 fps at its own resolution, of the length
    :func:`veo_duration` picks; the editor fits clips together.
    """

    role = "video"

    def generate_single_video(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
        call: ProviderCall | None = None,
    ) -> Path:
        """Make the clip of ``prompt`` from its first frame (``reference_image_paths[0]``)
        and, where the family takes one, its last (``[-1]``); keep it at
        ``request.output_path`` (checked with PyAV, written atomically) and return it.

        A Veo operation of this model that an earlier attempt started
        (``call.recall_job()``) is polled again instead of sending a new request (a
        remembered job of another model or provider is ignored); otherwise one
        ``generate_videos`` request is sent (after the cancel token, the rate limiter
        and ``call.authorize`` with the seconds asked of Veo), recorded, and its
        operation name kept with ``call.remember_job`` until the clip is saved or the
        operation is over. The operation is polled with
        :func:`~vimax_nb.providers.jobs.wait_for_job` (``options.poll_interval``,
        ``max_poll_interval``, ``timeout``), each poll reported as ``waiting on <model>
        (N s)``; a cancel stops the polling at once and forgets the operation (Vertex AI
        cannot cancel it), an interrupt keeps it for the resumed workflow. A failed
        operation (retryable only for INTERNAL and UNAVAILABLE) or a clip filtered by
        Responsible AI is a ProviderError quoting the reason.
        """
        call = call or ProviderCall()
        what = f"video with {self.model}"
        operation_name = call.recall_job()
        if operation_name and self._owns(operation_name):
            operation = types.GenerateVideosOperation.model_validate({"name": operation_name})
        else:
            operation = self._submit(prompt, reference_image_paths, request, call, what)
        operation = wait_for_job(
            operation,
            fetch=lambda job: self._fetch(job, call, what),
            done=lambda job: bool(job.done),
            call=call,
            model=self.model,
            provider=PROVIDER,
            timing=self.config.job_timing,
        )
        try:
            clip = self._clip(operation, what)
        except ProviderError:
            call.remember_job(None)  # the operation is over: another attempt starts anew
            raise
        # a clip that does not decode is retryable and the job kept: it is fetched again
        save_clip(clip, request.output_path, provider=PROVIDER, model=self.model)
        call.remember_job(None)
        return Path(request.output_path)

    def _owns(self, operation_name: str) -> bool:
        """Whether ``operation_name`` is a Vertex AI operation of this model."""
        return f"/models/{self.model.rsplit('/', 1)[-1]}/operations/" in operation_name

    def _submit(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
        call: ProviderCall,
        what: str,
    ) -> types.GenerateVideosOperation:
        family = veo_family(self.model)
        seconds = veo_duration(request.duration, family)
        width, height = request.size
        first = _image(reference_image_paths[0]) if reference_image_paths else None
        last = None
        if family.last_frame and len(reference_image_paths) > 1:
            last = _image(reference_image_paths[-1])
        options = self.config.options
        config = types.GenerateVideosConfig(
            number_of_videos=1,
            duration_seconds=seconds,
            aspect_ratio="16:9" if width >= height else "9:16",
            seed=call.seed % 2**32,
            last_frame=last,
            generate_audio=options.generate_audio if family.audio else None,
            resolution=options.resolution,
        )
        call.raise_if_cancelled()
        self.rate_limiter.acquire(call.cancel_token)
        usage = Usage(PROVIDER, self.model, "video", video_seconds=float(seconds))
        call.authorize(usage)
        try:
            operation = self.client.models.generate_videos(
                model=self.model,
                source=types.GenerateVideosSource(prompt=prompt, image=first),
                config=config,
            )
        except SDK_ERRORS as exc:
            raise self.error(exc, what) from exc
        call.record(usage)
        if not operation.name and not operation.done:
            raise ProviderError(
                f"{what}: the answer named no operation to poll", retryable=True, provider=PROVIDER
            )
        call.remember_job(operation.name or None)
        return operation

    def _fetch(
        self, operation: types.GenerateVideosOperation, call: ProviderCall, what: str
    ) -> types.GenerateVideosOperation:
        try:
            return self.client.operations.get(operation)
        except genai_errors.ClientError as exc:
            if exc.code != 404:
                raise self.error(exc, f"{what}: polling {operation.name}") from exc
            call.remember_job(None)
            raise ProviderError(
                f"{what}: the operation {operation.name} is gone ({exc.message}); the next "
                "attempt starts a new one",
                retryable=True,
                provider=PROVIDER,
            ) from exc
        except SDK_ERRORS as exc:
            raise self.error(exc, f"{what}: polling {operation.name}") from exc

    def _clip(self, operation: types.GenerateVideosOperation, what: str) -> bytes:
        """The clip's bytes of a finished operation, or the ProviderError of its failure."""
        if operation.error:
            code = operation.error.get("code")
            message = operation.error.get("message") or operation.error
            raise ProviderError(
                f"{what}: the operation failed (code {code}): {message}",
                retryable=code in _TRANSIENT_CODES,
                provider=PROVIDER,
            )
        result = operation.response or operation.result
        videos = result.generated_videos if result is not None else None
        video = videos[0].video if videos else None
        if video is not None and video.video_bytes:
            return video.video_bytes
        if video is not None and video.uri:
            raise ProviderError(
                f"{what}: Veo kept the clip at {video.uri} instead of answering with it; "
                "vimax-nb reads clips inline only (set no output_gcs_uri)",
                provider=PROVIDER,
            )
        if result is not None and (
            result.rai_media_filtered_count or result.rai_media_filtered_reasons
        ):
            reasons = "; ".join(result.rai_media_filtered_reasons or ()) or "no reason given"
            raise ProviderError(
                f"{what}: Veo filtered the clip (Responsible AI): {reasons}", provider=PROVIDER
            )
        raise ProviderError(
            f"{what}: the operation finished without a clip", retryable=True, provider=PROVIDER
        )
