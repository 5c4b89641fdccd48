"""Providers backed by Google's generative AI: Gemini (chat), Gemini image models ("Nano
Banana") and Veo (video), through the official ``google-genai`` SDK.

Importing this package imports ``google-genai`` (an optional extra), so
:func:`vimax_nb.providers.build_model` imports it only when a Google provider is asked
for; :func:`build` makes its models from a role's
:class:`~vimax_nb.providers.settings.ProviderSettings`. Its modules: ``config``
(settings and environment -> :class:`GoogleConfig`), ``client`` (the SDK client, the
rate limiter and the probe the models share), ``errors`` (the mapping below),
``answers`` (reading a ``generateContent`` answer), ``chat``, ``images`` and ``video``.

Supported:

* :class:`GoogleChatModel` (default ``gemini-2.5-flash``) - ``generateContent`` with
  ``response_mime_type="application/json"`` and the answer's JSON schema
  (``response_json_schema``), the task's instructions as system instruction, the
  workflow's seed; invalid answers are re-asked in the same conversation up to
  ``options.max_reasks`` (2) times with the validation errors quoted. Usage: prompt
  tokens in, candidate and thinking tokens out.
* :class:`GoogleImageModel` (default ``gemini-2.5-flash-image``) - ``generateContent``
  with the IMAGE response modality, the reference images as inline image parts before
  the prompt, the aspect ratio closest to the size asked for (``ImageConfig``); the
  answer is cropped and resized to exactly that size. Usage: one image, and tokens.
* :class:`GoogleVideoModel` (default ``veo-3.0-generate-001``) - image-to-video from the
  shot's first frame, and its last frame where the family takes one (see
  :data:`~.video.VEO_FAMILIES`: ``veo-2`` 5-8 s and ``veo-3.1`` 4/6/8 s with a last
  frame, ``veo-3``/``veo-3.0`` 4/6/8 s first frame only; the length is the shortest
  accepted one at least as long as asked), 16:9 or 9:16 after the size, one video, the
  workflow's seed, ``generate_audio`` (option, default false) for Veo 3 families and
  ``resolution`` (option). The operation is polled until done, each poll reported as
  ``waiting on <model> (N s)``; its name is kept in the call's job slot, so a retry or
  a restarted server polls the same operation instead of paying again. Vertex AI has
  no cancel for Veo operations: a cancel stops polling and forgets the operation.
  Usage: the seconds asked of Veo.
* ``probe()`` of all three: ``models.get`` (free).
* Every call takes a :class:`~vimax_nb.providers.base.ProviderCall`: its cancel token is
  checked before each request, its budget authorizes each paid request before it is
  sent (a :class:`~vimax_nb.providers.base.BudgetExceeded` means nothing was sent),
  and what each answered request used is recorded.

Backends (google-genai 3.x runs Veo in Vertex AI mode only). Vertex AI mode is
``options.vertexai``, else ``GOOGLE_GENAI_USE_ENTERPRISE``, else
``GOOGLE_GENAI_USE_VERTEXAI`` (``true``/``1``), as the SDK decides it; a video model
outside it is refused when built. In Vertex AI mode, ``options.project``, else an API
key of the settings, else ``GOOGLE_CLOUD_PROJECT``, else an API key of the environment:
a project means project mode (Google application-default credentials, location
``options.location`` / ``GOOGLE_CLOUD_LOCATION`` / ``us-central1``), a key express mode
(a Google Cloud API key that Vertex AI accepts). Otherwise the Gemini API with an API key.

Configuration (``ProviderSettings`` first, then the environment, then the default):

* API key: ``api_key``, ``api_key_env``, ``GEMINI_API_KEY``, ``GOOGLE_API_KEY``;
* model: ``model``, ``VIMAX_GOOGLE_CHAT_MODEL`` / ``VIMAX_GOOGLE_IMAGE_MODEL`` /
  ``VIMAX_GOOGLE_VIDEO_MODEL``, the defaults above;
* ``base_url``, ``VIMAX_GOOGLE_BASE_URL`` (a proxy or a test server; sent as
  ``HttpOptions.base_url``);
* ``requests_per_minute``, ``VIMAX_GOOGLE_RPM`` (``off`` for none), 60: paces one
  model's paid requests (polls are not paced);
* ``timeout`` (HTTP, seconds), 180;
* ``options`` (:class:`~.config.GoogleOptions`, unknown keys refused): ``vertexai``,
  ``project``, ``location``, ``poll_interval`` (5 s), ``max_poll_interval`` (20 s),
  ``timeout`` (of a Veo operation, 1800 s), ``max_reasks`` (2), ``generate_audio``
  (false), ``resolution`` (none: the model's default).

The SDK never retries (``HttpRetryOptions(attempts=1)``) nor continues an answer on
its own (``automatic_continuation=False``): every failure becomes a
:class:`~vimax_nb.providers.base.ProviderError` whose ``retryable`` flag tells the
coordinator whether to try again. Models block; call them from worker threads.

Errors, all ``ProviderError(provider="google")`` quoting the server's message:

* retryable: timeouts, an unreachable service, HTTP 408, 409, 429 rate limits and
  >= 500, answers still invalid after ``max_reasks`` re-asks, an answer without
  candidates or without an image (not refused), an undecodable image or clip, a Veo
  operation that takes longer than ``options.timeout`` (the next attempt polls it
  again), that is gone (404 while polling: the next attempt starts anew), that failed
  with INTERNAL or UNAVAILABLE, or that finished without a clip;
* not retryable: HTTP 429 when a quota is used up (a daily quota or a quota of 0:
  hint: quota and billing), 401/403 (hint: the key, or the Vertex AI access and mode),
  400 (the server's message; an invalid key gets the key hint), 404 (hint: the model
  name, base_url, location), other 4xx, a blocked prompt or a safety finish reason
  (the model's reason), a failed Veo operation or a clip filtered by Responsible AI
  (their reasons), a clip kept in Cloud Storage, missing Google credentials in project
  mode, and the configuration errors of :func:`build`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..base import Role
from ..settings import ProviderSettings
from .chat import GoogleChatModel
from .config import GoogleConfig, GoogleOptions, resolve_config
from .images import GoogleImageModel
from .video import GoogleVideoModel

__all__ = [
    "GoogleChatModel",
    "GoogleConfig",
    "GoogleImageModel",
    "GoogleOptions",
    "GoogleVideoModel",
    "build",
]


def build(
    role: Role, settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> GoogleChatModel | GoogleImageModel | GoogleVideoModel:
    """The Google model of ``role`` configured by ``settings`` over ``environ`` (None:
    the process's environment); see :func:`~.config.resolve_config`. Sends nothing.

    Raises a non-retryable ProviderError saying what to set: no API key (``GEMINI_API_KEY``
    or ``GOOGLE_API_KEY``, or ``api_key``/``api_key_env``), Veo outside Vertex AI mode, a
    Vertex AI location without a project, an unknown or malformed option.
    """
    config = resolve_config(role, settings, environ)
    if role == "chat":
        return GoogleChatModel(config)
    return GoogleImageModel(config) if role == "image" else GoogleVideoModel(config)
