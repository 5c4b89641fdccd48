"""The providers file: one YAML or TOML file that says which provider each role uses,
how to reach it, what calls cost and what is cached (``c.VimaxApp.providers_file``,
``vimax-nb run --providers FILE``).

It reads ViMax's own configs: the sections ``chat_model``, ``image_generator`` and
``video_generator`` (or ``chat``, ``image``, ``video``) with ``class_path``,
``init_args`` (``model``, ``model_provider``, ``api_key``, ``base_url``) and
``max_requests_per_minute``, so a ViMax user can bring their setup. Each section may
also say, directly: ``provider``, ``model``, ``api_key``, ``api_key_env``, ``base_url``,
``max_requests_per_minute`` (or ``rpm``), ``timeout`` and ``options``. Besides:

* ``also``: more providers a workflow may pick per role, ``{video: [{provider: ...}]}``;
* ``prices``: per model, ``{input_tokens, output_tokens, image, video_second}`` in US
  dollars (per million tokens, per image, per second);
* ``cache``: the roles whose results are cached (default: all three);
* ``max_cost``: the US dollars a workflow may spend unless it says otherwise.

Every mistake is a :class:`ProvidersFileError` naming the file, the key and the fix.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .base import ROLES, Role
from .prices import ModelPrices
from .settings import ProviderSettings

__all__ = ["ProvidersFile", "ProvidersFileError", "load_providers_file"]

log = logging.getLogger(__name__)

_SECTIONS: dict[str, Role] = {
    "chat": "chat",
    "chat_model": "chat",
    "image": "image",
    "image_generator": "image",
    "video": "video",
    "video_generator": "video",
}
_TOP_LEVEL = {*_SECTIONS, "also", "prices", "cache", "max_cost"}
#: Keys of ViMax's configs that have no meaning here; read and left alone.
_VIMAX_ONLY = {"working_dir", "assets", "mllm_model"}
_IGNORED_IN_SECTION = {"max_requests_per_day"}
#: Words in a ViMax ``class_path`` (``tools.VideoGeneratorVeoGoogleAPI``) -> our provider.
_CLASS_WORDS = (("google", "google"), ("replicate", "replicate"), ("openai", "openai"))
_MODEL_PROVIDERS = {"openai": "openai", "google_genai": "google", "google": "google"}


class ProvidersFileError(ValueError):
    """The providers file cannot be used as it is; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ProvidersFile:
    """What a providers file configures."""

    path: Path
    roles: dict[Role, ProviderSettings] = field(default_factory=dict)
    also: dict[Role, list[ProviderSettings]] = field(default_factory=dict)
    prices: dict[str, ModelPrices] = field(default_factory=dict)
    cache: tuple[Role, ...] | None = None
    max_cost: float | None = None


def load_providers_file(path: str | Path) -> ProvidersFile:
    """Read and check the providers file at ``path`` (``.toml`` is TOML, anything else
    YAML)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvidersFileError(
            f"cannot read the providers file {str(source)!r}: {exc.strerror or exc}"
        ) from None
    data = _parse(source, text)
    if not isinstance(data, Mapping):
        raise ProvidersFileError(f"{source}: the file must hold a mapping of sections")
    unknown = set(data) - _TOP_LEVEL - _VIMAX_ONLY
    if unknown:
        raise ProvidersFileError(
            f"{source}: unknown section(s) {', '.join(sorted(map(str, unknown)))}; known: "
            f"{', '.join(sorted(_TOP_LEVEL))}"
        )
    roles: dict[Role, ProviderSettings] = {}
    for name, role in _SECTIONS.items():
        if name in data and data[name] is not None:
            if role in roles:
                raise ProvidersFileError(f"{source}: the {role} provider is configured twice")
            roles[role] = _settings(source, name, data[name])
    also: dict[Role, list[ProviderSettings]] = {}
    for role_name, entries in (data.get("also") or {}).items():
        also_role = _SECTIONS.get(str(role_name))
        if also_role is None or not isinstance(entries, list):
            raise ProvidersFileError(
                f"{source}: 'also' maps a role (chat, image, video) to a list of providers"
            )
        also[also_role] = [
            _settings(source, f"also.{role_name}[{i}]", e) for i, e in enumerate(entries)
        ]
    prices: dict[str, ModelPrices] = {}
    for model, table in (data.get("prices") or {}).items():
        try:
            prices[str(model)] = ModelPrices.model_validate(table)
        except ValidationError as exc:
            raise ProvidersFileError(f"{source}: prices.{model}: {_first_error(exc)}") from None
    return ProvidersFile(
        source, roles, also, prices, _cache_roles(source, data), _max_cost(source, data)
    )


def _parse(source: Path, text: str) -> Any:
    if source.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ProvidersFileError(f"{source} is not valid TOML: {exc}") from None
    import yaml

    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ProvidersFileError(f"{source} is not valid YAML: {exc}") from None


def _settings(source: Path, where: str, section: Any) -> ProviderSettings:
    if not isinstance(section, Mapping):
        raise ProvidersFileError(f"{source}: {where} must be a mapping")
    values = {k: v for k, v in section.items() if k not in _IGNORED_IN_SECTION}
    if "max_requests_per_day" in section:
        log.warning("%s: %s.max_requests_per_day is not enforced by vimax-nb", source, where)
    init_args = values.pop("init_args", None) or {}
    if not isinstance(init_args, Mapping):
        raise ProvidersFileError(f"{source}: {where}.init_args must be a mapping")
    class_path = values.pop("class_path", None)
    model_provider = init_args.get("model_provider")
    merged: dict[str, Any] = {
        k: v for k, v in init_args.items() if k != "model_provider" and v is not None
    }
    merged.update({k: v for k, v in values.items() if v is not None})
    for alias in ("rpm", "max_requests_per_minute"):
        if alias in merged:
            merged["requests_per_minute"] = merged.pop(alias)
    if "provider" not in merged:
        provider = _provider_from(class_path, model_provider)
        if provider is None:
            raise ProvidersFileError(
                f"{source}: {where} names no provider: add 'provider: procedural|openai|"
                f"google|replicate'"
                + (
                    f" (class_path {class_path!r} has no vimax-nb counterpart)"
                    if class_path
                    else ""
                )
            )
        merged["provider"] = provider
    try:
        return ProviderSettings.model_validate(merged)
    except ValidationError as exc:
        raise ProvidersFileError(f"{source}: {where}: {_first_error(exc)}") from None


def _provider_from(class_path: Any, model_provider: Any) -> str | None:
    if isinstance(model_provider, str) and model_provider.lower() in _MODEL_PROVIDERS:
        return _MODEL_PROVIDERS[model_provider.lower()]
    if isinstance(class_path, str):
        lowered = class_path.lower()
        for word, provider in _CLASS_WORDS:
            if word in lowered:
                return provider
    return None


def _cache_roles(source: Path, data: Mapping[str, Any]) -> tuple[Role, ...] | None:
    if "cache" not in data:
        return None
    value = data["cache"]
    if value is False or value is None:
        return ()
    if value is True:
        return ROLES
    if not isinstance(value, list) or any(v not in ROLES for v in value):
        raise ProvidersFileError(
            f"{source}: cache is a list of roles (chat, image, video), true or false"
        )
    return tuple(r for r in ROLES if r in value)


def _max_cost(source: Path, data: Mapping[str, Any]) -> float | None:
    value = data.get("max_cost")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ProvidersFileError(f"{source}: max_cost is a positive number of US dollars")
    return float(value)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
