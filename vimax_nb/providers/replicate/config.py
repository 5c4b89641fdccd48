"""How a Replicate model is configured: :class:`ReplicateConfig`, resolved from a role's
:class:`~vimax_nb.providers.settings.ProviderSettings` and the environment by
:func:`resolve_config` (this module itself uses nothing of the ``replicate`` SDK)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..base import ProviderError, Role
from ..jobs import JobTiming
from ..settings import ProviderSettings

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODELS",
    "PROVIDER",
    "ReplicateConfig",
    "ReplicateOptions",
    "resolve_config",
]

PROVIDER = "replicate"
DEFAULT_BASE_URL = "https://api.replicate.com"
#: The model of each role when neither the settings nor the environment name one.
DEFAULT_MODELS: dict[Role, str] = {
    "image": "bytedance/seedream-4",
    "video": "bytedance/seedance-1-lite",
}
DEFAULT_RPM = 60.0
DEFAULT_TIMEOUT = 60.0
#: How predictions are polled when the options do not say: (interval, max interval,
#: timeout) in seconds.
_DEFAULT_POLLING: dict[Role, tuple[float, float, float]] = {
    "image": (1.0, 5.0, 300.0),
    "video": (5.0, 20.0, 1800.0),
}
_MODEL_REF = re.compile(
    r"(?P<owner>[A-Za-z0-9][\w.-]*)/(?P<name>[A-Za-z0-9][\w.-]*)(?::(?P<version>[A-Za-z0-9]+))?"
)
_VIDEO_ONLY = ("first_frame_key", "last_frame_key", "duration_key", "durations")
_IMAGE_ONLY = ("image_key", "image_list")


class ReplicateOptions(BaseModel):
    """What ``ProviderSettings.options`` may say to the Replicate provider; unknown keys
    are refused.

    ``poll_interval``, ``max_poll_interval`` and ``timeout`` (seconds) time the polling
    of a prediction (None: the role's default). ``input`` is merged into every
    prediction's input (after what the provider computes, before the reference images).
    The ``*_key`` options name a model's inputs where the model table does not know
    them or is wrong (``""``: send nothing under that input): ``first_frame_key``,
    ``last_frame_key``, ``duration_key`` and ``durations`` (the values, in seconds, the
    duration input takes) for video; ``image_key`` and ``image_list`` (whether it takes
    a list of images) for images; ``aspect_ratio_key`` for both.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    poll_interval: float | None = Field(default=None, gt=0)
    max_poll_interval: float | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    input: dict[str, Any] = Field(default_factory=dict)
    first_frame_key: str | None = None
    last_frame_key: str | None = None
    duration_key: str | None = None
    durations: tuple[int, ...] | None = Field(default=None, min_length=1)
    aspect_ratio_key: str | None = None
    image_key: str | None = None
    image_list: bool | None = None


@dataclass(frozen=True, slots=True)
class ReplicateConfig:
    """Everything one Replicate model needs, resolved and checked.

    ``model`` is the name as configured (``owner/name`` or ``owner/name:version``),
    split into ``owner``, ``name`` and ``version``; ``timeout`` is the HTTP timeout in
    seconds; ``requests_per_minute=None`` means unpaced.
    """

    role: Role
    model: str
    owner: str
    name: str
    version: str | None
    api_token: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    requests_per_minute: float | None = DEFAULT_RPM
    options: ReplicateOptions = field(default_factory=ReplicateOptions)

    @property
    def slug(self) -> str:
        """``owner/name``, as predictions name their model."""
        return f"{self.owner}/{self.name}"

    @property
    def job_timing(self) -> JobTiming:
        """How a prediction of this role is polled (the options over the role's defaults)."""
        interval, max_interval, timeout = _DEFAULT_POLLING[self.role]
        interval = self.options.poll_interval or interval
        return JobTiming(
            interval=interval,
            max_interval=max(self.options.max_poll_interval or max_interval, interval),
            timeout=self.options.timeout or timeout,
        )


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _options(settings: ProviderSettings, role: Role) -> ReplicateOptions:
    try:
        options = ReplicateOptions.model_validate(settings.options)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        known = ", ".join(ReplicateOptions.model_fields)
        raise ProviderError(
            f"replicate options: {where}: {error['msg']} (the options are {known})",
            provider=PROVIDER,
        ) from None
    other = _IMAGE_ONLY if role == "video" else _VIDEO_ONLY
    misplaced = [name for name in other if getattr(options, name) is not None]
    if misplaced:
        raise ProviderError(
            f"replicate options: {', '.join(misplaced)} apply to "
            f"{'image' if role == 'video' else 'video'} models, not to the {role} model",
            provider=PROVIDER,
        )
    return options


def resolve_config(
    role: Role, settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> ReplicateConfig:
    """The config of the Replicate model of ``role``; reads ``environ`` (None: the
    process's environment) and sends nothing.

    The model is ``settings.model``, else ``VIMAX_REPLICATE_{IMAGE,VIDEO}_MODEL``, else
    :data:`DEFAULT_MODELS`; the API token ``settings.key`` with ``REPLICATE_API_TOKEN``
    as fallback; the base URL ``settings.base_url``, else ``REPLICATE_BASE_URL`` (the
    SDK's own variable), else :data:`DEFAULT_BASE_URL`; the pace
    ``settings.requests_per_minute``, else ``VIMAX_REPLICATE_RPM`` (``off`` for none),
    else 60. Raises a non-retryable :class:`ProviderError` saying what to fix: no token,
    a model name that is not ``owner/name`` or ``owner/name:version``, an unknown,
    malformed or misplaced option, a malformed ``VIMAX_REPLICATE_RPM``.
    """
    env = os.environ if environ is None else environ
    options = _options(settings, role)
    model = (
        _text(settings.model)
        or _text(env.get(f"VIMAX_REPLICATE_{role.upper()}_MODEL"))
        or DEFAULT_MODELS[role]
    )
    match = _MODEL_REF.fullmatch(model)
    if match is None:
        raise ProviderError(
            f"{model!r} is not a Replicate model name: write owner/name (as in "
            "replicate.com/owner/name, e.g. bytedance/seedance-1-lite) or "
            "owner/name:version",
            provider=PROVIDER,
        )
    token = settings.require_key(env, "REPLICATE_API_TOKEN", provider=PROVIDER)
    rpm = settings.pace(env, "VIMAX_REPLICATE_RPM", DEFAULT_RPM, provider=PROVIDER)
    return ReplicateConfig(
        role=role,
        model=model,
        owner=match["owner"],
        name=match["name"],
        version=match["version"],
        api_token=token,
        base_url=(
            _text(settings.base_url) or _text(env.get("REPLICATE_BASE_URL")) or DEFAULT_BASE_URL
        ).rstrip("/"),
        timeout=settings.timeout or DEFAULT_TIMEOUT,
        requests_per_minute=rpm,
        options=options,
    )
