"""Providers backed by Replicate's hosted models (images and video), through the official
``replicate`` SDK.

Importing this package imports ``replicate`` (an optional extra), so
:func:`vimax_nb.providers.build_model` imports it only when the Replicate provider is
asked for; :func:`build` makes its models from a role's
:class:`~vimax_nb.providers.settings.ProviderSettings`. Its modules: ``config``
(settings and environment -> :class:`ReplicateConfig`), ``families`` (the model table
below), ``errors`` (the error mapping below), ``client`` (the SDK client, the rate
limiter, the probe and a prediction's life, which both models share), ``images`` and
``video``. Replicate has no chat models here: use google or openai for chat.

Supported:

* :class:`ReplicateVideoModel` (default ``bytedance/seedance-1-lite``: image-to-video
  from a first *and* a last frame, which is what ViMax hands over for every shot, at
  any length from 2 to 12 s, so a shot is paid for about the seconds it lasts, and one
  of the cheapest per second) - the shot's first frame and, where the family takes
  one, its last frame are uploaded (``POST /v1/files``) and their URLs sent under the
  family's input names with the prompt, the length (the shortest accepted one at least
  as long as asked, else the longest), the aspect ratio closest to the clip's size and
  the workflow's seed where the family takes them. The prediction (``POST
  /v1/models/{owner}/{name}/predictions``, or ``POST /v1/predictions`` with the version
  of an ``owner/name:version`` model) is polled (``GET /v1/predictions/{id}``) until it
  ends, each poll reported as ``waiting on <model> (N s): <last log line>``; its id is
  kept in the call's job slot, so a retry or a restarted server polls the same
  prediction instead of paying again. A cancel cancels it (``POST
  /v1/predictions/{id}/cancel``) and stops polling at once. The output file is
  downloaded with the token and kept once PyAV decodes it. Usage: the seconds the
  prediction's input asks for (a model without a length input: the seconds asked of
  the provider); not Replicate's ``predict_time``, which is GPU time, not video.
* :class:`ReplicateImageModel` (default ``bytedance/seedream-4``: it takes up to ten
  reference images, so a frame keeps every visible character's look; Flux Kontext
  takes one) - the references uploaded, every one to a model that takes a list, the
  first to one that takes a single image; polled like a video; the output downloaded,
  decoded with Pillow, center-cropped and resized to exactly the size asked for.
  Usage: one image.
* ``probe()`` of both: ``GET /v1/models/{owner}/{name}`` (and the version, when named).
* Every call takes a :class:`~vimax_nb.providers.base.ProviderCall`: its cancel token
  is checked before each request; its budget authorizes each prediction before
  anything is uploaded or created (a :class:`~vimax_nb.providers.base.BudgetExceeded`
  means nothing was sent); what a succeeded prediction used is recorded once its output
  is kept (a retry that fetches the output again does not count it twice).

The model table (``families``): a model's family is the first name prefix its name
starts with; the reference images are uploaded files whose URLs go under these inputs
(family: first frame, last frame, accepted lengths in seconds):

* ``kwaivgi/kling-v2.1-master``: ``start_image``, none, 5 or 10;
* ``kwaivgi/kling-v2.1``: ``start_image``, ``end_image`` (only with ``input: {mode:
  pro}``: standard mode refuses it), 5 or 10;
* ``kwaivgi/kling-v1.6-pro``: ``start_image``, ``end_image``, 5 or 10;
* ``kwaivgi/kling`` (v1.6-standard, v2.5-turbo-pro...): ``start_image``, none, 5 or 10;
* ``bytedance/seedance-1-pro-fast``: ``image``, none, 2 to 12;
* ``bytedance/seedance-1`` (pro, lite): ``image``, ``last_frame_image``, 2 to 12;
* ``wan-video/wan-2.2-i2v-fast``: ``image``, ``last_image``, ``num_frames`` 81 to 121
  at 16 fps (``frames_per_second``), about 5 to 7.5 s;
* ``wan-video/`` (others): ``image``, none, no length input;
* ``minimax/hailuo-02``: ``first_frame_image``, ``last_frame_image``, 6;
* ``minimax/hailuo`` (2.3...): ``first_frame_image``, none, 6;
* ``minimax/`` (others): ``first_frame_image``, none, no length input;
* ``google/veo-3.1``: ``image``, ``last_frame``, 4, 6 or 8;
* ``google/veo-3``: ``image``, none, 4, 6 or 8;
* ``google/veo-2``: ``image``, none, 5 to 8;
* any other model: ``image``, none, no length input.

Aspect ratio (``aspect_ratio``): Kling (but v2.1), Seedance, Veo; seed: Seedance, Wan,
Veo; Veo 3 gets ``generate_audio: false`` (as the google provider). Hailuo makes 10 s
clips only at 768p or 512p while its default is 1080p: to allow them, set
``options: {input: {resolution: 768p}, durations: [6, 10]}``. Images: Flux Kontext
(``black-forest-labs/flux-kontext``) ``input_image`` (the first reference); Seedream 4
(``bytedance/seedream-4``) ``image_input`` (a list of up to 10); Nano Banana
(``google/nano-banana``) ``image_input`` (a list); any other ``image`` (the first);
all get the closest ``aspect_ratio`` but the others, Kontext the seed, Kontext and Nano
Banana ``output_format: png``.

Configuration (``ProviderSettings`` first, then the environment, then the default):

* API token: ``api_key``, ``api_key_env``, ``REPLICATE_API_TOKEN``;
* model: ``model``, ``VIMAX_REPLICATE_VIDEO_MODEL`` / ``VIMAX_REPLICATE_IMAGE_MODEL``,
  the defaults above; ``owner/name`` (an official model) or ``owner/name:version``;
* ``base_url``, ``REPLICATE_BASE_URL`` (the SDK's variable), https://api.replicate.com;
* ``requests_per_minute``, ``VIMAX_REPLICATE_RPM`` (``off`` for none), 60: paces one
  model's prediction creations (uploads, polls and downloads are not paced);
* ``timeout`` (HTTP, seconds), 60;
* ``options`` (:class:`~.config.ReplicateOptions`, unknown keys refused):
  ``poll_interval`` (video 5 s, image 1 s), ``max_poll_interval`` (20 s, 5 s),
  ``timeout`` (of a prediction: 1800 s, 300 s), ``input`` (a mapping merged into
  every prediction's input, e.g. ``{resolution: 1080p}`` or ``{mode: pro}``), and for
  models the table does not know (``""`` sends nothing under that input):
  ``first_frame_key``, ``last_frame_key``, ``duration_key``, ``durations`` (the
  accepted lengths in seconds) for video, ``image_key``, ``image_list`` for images,
  ``aspect_ratio_key`` for both.

The client never retries on its own (the SDK's retrying transport is replaced): every
failure becomes a :class:`~vimax_nb.providers.base.ProviderError` whose ``retryable``
flag tells the coordinator whether to try again. Uploaded files are left to expire.
Models block; call them from worker threads.

Errors, all ``ProviderError(provider="replicate")`` quoting the service's detail:

* retryable: timeouts, an unreachable service, HTTP 408, 409, 429 (hint: pace) and
  >= 500, a prediction that failed for another reason than those below (its error
  quoted), one canceled outside vimax-nb, one that takes longer than
  ``options.timeout`` (kept: the next attempt polls it again), one that is gone
  (404 while polling) or whose output is gone (forgotten: the next attempt starts a
  new one), an output that does not decode;
* not retryable: HTTP 401 (hint: ``REPLICATE_API_TOKEN``), 402 (hint: add credit),
  403, 404 (hint: the model name and base_url), 422 (the invalid input quoted), other
  4xx, a prediction refused as unsafe content (NSFW, "flagged", "sensitive", safety,
  moderation: its reason quoted) or for an invalid input, a reference image that
  cannot be read, a malformed size, a request the budget refuses, and the
  configuration errors of :func:`build`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..base import Role
from ..settings import ProviderSettings
from .config import ReplicateConfig, ReplicateOptions, resolve_config
from .families import IMAGE_FAMILIES, VIDEO_FAMILIES, ImageFamily, VideoFamily
from .images import ReplicateImageModel
from .video import ReplicateVideoModel

__all__ = [
    "IMAGE_FAMILIES",
    "VIDEO_FAMILIES",
    "ImageFamily",
    "ReplicateConfig",
    "ReplicateImageModel",
    "ReplicateOptions",
    "ReplicateVideoModel",
    "VideoFamily",
    "build",
]


def build(
    role: Role, settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> ReplicateImageModel | ReplicateVideoModel:
    """The Replicate model of ``role`` configured by ``settings`` over ``environ`` (None:
    the process's environment); see :func:`~.config.resolve_config`. Sends nothing.

    Raises ValueError for the chat role, and a non-retryable ProviderError saying what
    to set: no API token (``REPLICATE_API_TOKEN``, or ``api_key``/``api_key_env``), a
    model name that is not ``owner/name[:version]``, an unknown or malformed option.
    """
    if role == "chat":
        raise ValueError(
            "replicate has no chat model in vimax-nb: use google or openai for chat, "
            "replicate for images and video"
        )
    config = resolve_config(role, settings, environ)
    if role == "image":
        return ReplicateImageModel(config)
    return ReplicateVideoModel(config)
