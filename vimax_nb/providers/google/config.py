"""How a Google model is configured: :class:`GoogleConfig`, resolved from a role's
:class:`~vimax_nb.providers.settings.ProviderSettings` and the environment by
:func:`resolve_config` (this module itself uses nothing of ``google-genai``).

The Vertex AI rule follows the SDK's own: ``options.vertexai`` when given, else the
environment's ``GOOGLE_GENAI_USE_ENTERPRISE``, else ``GOOGLE_GENAI_USE_VERTEXAI``
(``true`` or ``1``, any case, means on). In Vertex AI mode a project
(``options.project``) beats an API key from the settings, which beats
``GOOGLE_CLOUD_PROJECT``, which beats an API key from the environment: a project
means *project mode* (Google credentials, ``location`` from ``options.location``,
``GOOGLE_CLOUD_LOCATION`` or ``us-central1``), a key *express mode*.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..base import ProviderError, Role
from ..jobs import JobTiming
from ..settings import ProviderSettings

__all__ = [
    "DEFAULT_LOCATION",
    "DEFAULT_MODELS",
    "KEY_VARIABLES",
    "PROVIDER",
    "GoogleConfig",
    "GoogleOptions",
    "resolve_config",
]

PROVIDER = "google"
#: The model of each role when neither the settings nor the environment name one.
DEFAULT_MODELS: dict[Role, str] = {
    "chat": "gemini-2.5-flash",
    "image": "gemini-2.5-flash-image",
    "video": "veo-3.0-generate-001",
}
#: Where an API key is looked for after ``settings.api_key`` / ``api_key_env``.
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
DEFAULT_LOCATION = "us-central1"
DEFAULT_RPM = 60.0
DEFAULT_TIMEOUT = 180.0

_VERTEX_CREDENTIALS = (
    f"either GOOGLE_CLOUD_PROJECT (and GOOGLE_CLOUD_LOCATION, default {DEFAULT_LOCATION}) "
    "and Google credentials (gcloud auth application-default login), or an API key that "
    f"Vertex AI accepts (express mode) in {' or '.join(KEY_VARIABLES)} or api_key/api_key_env"
)
_VERTEX_HOWTO = (
    "set vertexai: true in the provider's options (or GOOGLE_GENAI_USE_VERTEXAI=true in the "
    f"server's environment), with {_VERTEX_CREDENTIALS}"
)


class GoogleOptions(BaseModel):
    """What ``ProviderSettings.options`` may say to the Google provider; unknown keys
    are refused.

    ``vertexai``, ``project`` and ``location`` choose the backend (see the module
    docstring); ``poll_interval``, ``max_poll_interval`` and ``timeout`` (seconds) time
    the polling of a Veo operation; ``max_reasks`` bounds the chat model's re-asks of an
    invalid answer; ``generate_audio`` and ``resolution`` (``720p``, ``1080p``) go to
    Veo models that take them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vertexai: bool | None = None
    project: str | None = None
    location: str | None = None
    poll_interval: float = Field(default=5.0, gt=0)
    max_poll_interval: float = Field(default=20.0, gt=0)
    timeout: float = Field(default=1800.0, gt=0)
    max_reasks: int = Field(default=2, ge=0)
    generate_audio: bool = False
    resolution: str | None = None


@dataclass(frozen=True, slots=True)
class GoogleConfig:
    """Everything one Google model needs, resolved and checked.

    ``project`` is set in project mode only; ``api_key`` in express mode and in Gemini
    API mode (``vertexai=False``). ``timeout`` is the HTTP timeout in seconds;
    ``requests_per_minute=None`` means unpaced.
    """

    role: Role
    model: str
    vertexai: bool
    api_key: str | None = field(default=None, repr=False)
    project: str | None = None
    location: str | None = None
    base_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    requests_per_minute: float | None = DEFAULT_RPM
    options: GoogleOptions = field(default_factory=GoogleOptions)

    @property
    def mode(self) -> str:
        """``"Gemini API"``, ``"Vertex AI express mode"`` or ``"Vertex AI project P"``."""
        if not self.vertexai:
            return "Gemini API"
        if self.project:
            return f"Vertex AI project {self.project} ({self.location})"
        return "Vertex AI express mode"

    @property
    def job_timing(self) -> JobTiming:
        """How a Veo operation is polled (from the options)."""
        return JobTiming(
            interval=self.options.poll_interval,
            max_interval=max(self.options.max_poll_interval, self.options.poll_interval),
            timeout=self.options.timeout,
        )


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _flag(value: str | None) -> bool | None:
    return None if value is None else value.strip().lower() in ("true", "1")


def _options(settings: ProviderSettings) -> GoogleOptions:
    try:
        return GoogleOptions.model_validate(settings.options)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        known = ", ".join(GoogleOptions.model_fields)
        raise ProviderError(
            f"google options: {where}: {error['msg']} (the options are {known})",
            provider=PROVIDER,
        ) from None


def resolve_config(
    role: Role, settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> GoogleConfig:
    """The config of the Google model of ``role``; reads ``environ`` (None: the process's
    environment) and sends nothing.

    The model is ``settings.model``, else ``VIMAX_GOOGLE_{CHAT,IMAGE,VIDEO}_MODEL``, else
    :data:`DEFAULT_MODELS`; the base URL ``settings.base_url``, else
    ``VIMAX_GOOGLE_BASE_URL``; the pace ``settings.requests_per_minute``, else
    ``VIMAX_GOOGLE_RPM`` (``off`` for none), else 60. Raises a non-retryable
    :class:`ProviderError` saying what to set: no API key, Veo outside Vertex AI mode,
    a project or location outside it, a location without a project, an unknown or
    malformed option.
    """
    env = os.environ if environ is None else environ
    options = _options(settings)
    if options.vertexai is not None:
        vertexai = options.vertexai
    else:
        enterprise = _flag(env.get("GOOGLE_GENAI_USE_ENTERPRISE"))
        vertexai = bool(
            enterprise if enterprise is not None else _flag(env.get("GOOGLE_GENAI_USE_VERTEXAI"))
        )
    model = (
        _text(settings.model)
        or _text(env.get(f"VIMAX_GOOGLE_{role.upper()}_MODEL"))
        or DEFAULT_MODELS[role]
    )
    rpm = settings.pace(env, "VIMAX_GOOGLE_RPM", DEFAULT_RPM, provider=PROVIDER)
    common: dict[str, Any] = {
        "role": role,
        "model": model,
        "vertexai": vertexai,
        "base_url": _text(settings.base_url) or _text(env.get("VIMAX_GOOGLE_BASE_URL")),
        "timeout": settings.timeout or DEFAULT_TIMEOUT,
        "requests_per_minute": rpm,
        "options": options,
    }
    if role == "video" and not vertexai:
        raise ProviderError(
            f"Veo ({model}) runs only in Vertex AI mode of google-genai: {_VERTEX_HOWTO}",
            provider=PROVIDER,
        )
    if not vertexai:
        if options.project or options.location:
            raise ProviderError(
                "project and location are Vertex AI settings: also set vertexai: true in the "
                "options (or GOOGLE_GENAI_USE_VERTEXAI=true), or remove them",
                provider=PROVIDER,
            )
        key = settings.require_key(env, *KEY_VARIABLES, provider=PROVIDER)
        return GoogleConfig(api_key=key, **common)
    project = _text(options.project)
    if project is None and not (settings.api_key or settings.api_key_env):
        project = _text(env.get("GOOGLE_CLOUD_PROJECT"))
    if project is not None:
        location = (
            _text(options.location) or _text(env.get("GOOGLE_CLOUD_LOCATION")) or DEFAULT_LOCATION
        )
        return GoogleConfig(project=project, location=location, **common)
    if options.location:
        raise ProviderError(
            f"Vertex AI project mode needs a project: set project in the options or "
            f"GOOGLE_CLOUD_PROJECT (location {options.location} is set)",
            provider=PROVIDER,
        )
    express_key = settings.key(env, *KEY_VARIABLES)
    if express_key is None:
        raise ProviderError(
            f"Vertex AI mode has neither a project nor an API key: set {_VERTEX_CREDENTIALS}",
            provider=PROVIDER,
        )
    return GoogleConfig(api_key=express_key, **common)
