"""Model providers for the pipelines: which chat, image and video model to use.

``procedural`` (the default) runs offline and deterministically; ``openai`` speaks to
any OpenAI-compatible service (chat, images), ``google`` to Gemini, Nano Banana and
Veo (chat, images, video), ``replicate`` to Replicate's hosted models (images, video).
Providers know their parameters and :mod:`vimax_nb.shared`; they import nothing of the
coordinator, the store or the pipelines.

:class:`ProviderCatalog` holds every provider a server has configured, per role, each
either built or with the problem that stops it; a workflow picks among them. Importing
this package loads only :mod:`.base` (pydantic); a provider's package, and its SDK, is
imported when that provider is configured.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import (
    ROLES,
    ChatModel,
    ChatRequest,
    ImageModel,
    ImageOutput,
    ProviderCall,
    ProviderError,
    Role,
    Usage,
    VideoModel,
    VideoRequest,
)
from .cache import ResultCache, with_cache
from .prices import PriceTable
from .settings import ProviderSettings

__all__ = [
    "PROVIDER_ROLES",
    "ChatModel",
    "ChatRequest",
    "ImageModel",
    "ImageOutput",
    "ProviderCall",
    "ProviderCatalog",
    "ProviderEntry",
    "ProviderError",
    "ProviderSettings",
    "Providers",
    "Role",
    "Usage",
    "VideoModel",
    "VideoRequest",
    "build_model",
    "make_providers",
]

log = logging.getLogger(__name__)

#: Each provider and the roles it serves.
PROVIDER_ROLES: dict[str, tuple[Role, ...]] = {
    "procedural": ROLES,
    "openai": ("chat", "image"),
    "google": ROLES,
    "replicate": ("image", "video"),
}
#: The pip extra that installs each hosted provider's SDK.
_EXTRAS = {"openai": "openai", "google": "google", "replicate": "replicate"}
#: Environment variables whose presence means a provider is set up on this machine.
_CREDENTIALS = {
    "openai": ("OPENAI_API_KEY", "VIMAX_OPENAI_API_KEY"),
    "google": ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT"),
    "replicate": ("REPLICATE_API_TOKEN",),
}


@dataclass(frozen=True, slots=True)
class Providers:
    """The provider of each role the agents need."""

    chat: ChatModel
    image: ImageModel
    video: VideoModel

    def __getitem__(self, role: Role) -> Any:
        return getattr(self, role)


def build_model(
    role: Role, settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> Any:
    """The model ``settings`` describe for ``role``.

    Raises a non-retryable :class:`ProviderError` saying what to fix: an unknown
    provider, one that has no model for the role, its SDK not installed, or its own
    configuration problems (a missing key...).
    """
    name = settings.provider
    roles = PROVIDER_ROLES.get(name)
    if roles is None:
        raise ProviderError(
            f"unknown {role} provider {name!r}: choose one of "
            f"{', '.join(p for p, r in PROVIDER_ROLES.items() if role in r)}",
            provider=name,
        )
    if role not in roles:
        others = ", ".join(p for p, r in PROVIDER_ROLES.items() if role in r)
        raise ProviderError(
            f"{name} has no {role} model; {role} providers: {others}", provider=name
        )
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as exc:
        raise ProviderError(
            f'the {name} provider needs its SDK: pip install "vimax-nb[{_EXTRAS[name]}]" ({exc})',
            provider=name,
        ) from None
    try:
        model = module.build(role, settings, environ)
    except ValueError as exc:
        raise ProviderError(f"{name} {role}: {exc}", provider=name) from None
    return model


@dataclass(slots=True)
class ProviderEntry:
    """One configured provider for one role: its model, or the problem that stops it.

    ``problem`` is set when the model could not be built (it is then None) or when its
    last :meth:`ProviderCatalog.probe` failed; ``probed`` says whether a probe ran.
    """

    role: Role
    name: str
    settings: ProviderSettings
    model: Any = None
    problem: str | None = None
    default: bool = False
    probed: bool = False

    @property
    def ready(self) -> bool:
        return self.model is not None and self.problem is None

    @property
    def model_name(self) -> str:
        """The model's name, or what the settings asked for when it could not be built."""
        if self.model is not None:
            return str(self.model.model)
        return self.settings.model or "(default)"


@dataclass(slots=True)
class ProviderCatalog:
    """Every provider a server offers, per role, each role's default, and what their
    calls cost (``prices``).

    Build one with :meth:`configure` (or :meth:`of` for fixed models). Nothing falls
    back: asking for a provider that is not ready raises its problem.

    A configured catalog pickles as its configuration (each entry's settings without
    a literal ``api_key``, the prices, the cache's folder), never as live models: a Dask
    worker that unpickles it builds its own models once per process, reading keys from
    its own environment. A catalog :meth:`of` fixed models pickles its models.
    """

    entries: list[ProviderEntry] = field(default_factory=list)
    prices: PriceTable = field(default_factory=PriceTable)
    cache: ResultCache | None = None
    cache_roles: tuple[Role, ...] = ()
    configured: bool = False

    def __reduce_ex__(self, protocol: Any) -> Any:
        if not self.configured:
            return object.__reduce_ex__(self, protocol)
        configuration = (
            tuple(
                (e.role, e.settings.model_copy(update={"api_key": None}), e.default)
                for e in self.entries
            ),
            self.prices,
            self.cache.folder if self.cache is not None else None,
            self.cache_roles,
        )
        return (_rebuilt_catalog, (configuration,))

    @classmethod
    def of(
        cls,
        providers: Providers,
        prices: PriceTable | None = None,
        cache: ResultCache | None = None,
    ) -> ProviderCatalog:
        """A catalog of exactly these models, each its role's default; hosted ones answer
        from ``cache`` when given."""
        catalog = cls(prices=prices or PriceTable(), cache=cache, cache_roles=ROLES)
        for role in ROLES:
            model = providers[role]
            settings = ProviderSettings(provider=model.provider)
            entry = ProviderEntry(role, model.provider, settings, default=True)
            entry.model = catalog._cached(role, model)
            catalog.entries.append(entry)
        return catalog

    @classmethod
    def configure(
        cls,
        defaults: Mapping[Role, ProviderSettings],
        also: Mapping[Role, Iterable[ProviderSettings]] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        discover: bool = True,
        prices: PriceTable | None = None,
        cache: ResultCache | None = None,
        cache_roles: Iterable[Role] = ROLES,
    ) -> ProviderCatalog:
        """The catalog of ``defaults`` (one per role; procedural where missing), the
        settings in ``also``, ``procedural`` for every role, and (with ``discover``)
        each hosted provider whose credentials are in ``environ`` for the roles it
        serves. Models are built now (no network); failures become problems. Hosted
        models of ``cache_roles`` answer from ``cache`` when they can."""
        env = os.environ if environ is None else environ
        catalog = cls(
            prices=prices or PriceTable(),
            cache=cache,
            cache_roles=tuple(cache_roles),
            configured=True,
        )
        for role in ROLES:
            chosen = defaults.get(role) or ProviderSettings()
            catalog._add(role, chosen, env, default=True)
            for settings in (also or {}).get(role, ()):
                catalog._add(role, settings, env)
            catalog._add(role, ProviderSettings(), env)
            if discover:
                for name, names in _CREDENTIALS.items():
                    if role in PROVIDER_ROLES[name] and any(env.get(n, "").strip() for n in names):
                        catalog._add(role, ProviderSettings(provider=name), env)
        return catalog

    def _add(
        self, role: Role, settings: ProviderSettings, env: Mapping[str, str], default: bool = False
    ) -> None:
        if any(e.role == role and e.name == settings.provider for e in self.entries):
            return
        entry = ProviderEntry(role, settings.provider, settings, default=default)
        try:
            model = build_model(role, settings, env)
        except ProviderError as exc:
            entry.problem = str(exc)
        else:
            entry.model = self._cached(role, model)
        self.entries.append(entry)

    def _cached(self, role: Role, model: Any) -> Any:
        hosted = model.provider != "procedural"
        if hosted and self.cache is not None and role in self.cache_roles:
            return with_cache(model, role, self.cache)
        return model

    def entry(self, role: Role, name: str | None = None) -> ProviderEntry:
        """The entry of provider ``name`` for ``role`` (None: the role's default).

        Raises :class:`ProviderError` when the server has no such provider configured.
        """
        for entry in self.entries:
            if entry.role == role and (entry.name == name if name else entry.default):
                return entry
        offered = ", ".join(e.name for e in self.entries if e.role == role)
        raise ProviderError(
            f"the server has no {role} provider {name!r} configured (it has {offered}); "
            "configure it with c.VimaxApp.providers_file or its environment variables",
            provider=name or "",
        )

    def model(self, role: Role, name: str | None = None) -> Any:
        """The ready model of provider ``name`` for ``role``; raises :class:`ProviderError`
        with the entry's problem when it is not ready."""
        entry = self.entry(role, name)
        if not entry.ready:
            raise ProviderError(
                f"the {role} provider {entry.name!r} is not ready: {entry.problem}",
                provider=entry.name,
            )
        return entry.model

    def defaults(self) -> Providers:
        """Each role's default model, ready or not (None where it could not be built)."""
        return Providers(*(self.entry(role).model for role in ROLES))

    def probe(self, entry: ProviderEntry) -> None:
        """Ask ``entry``'s service whether it answers; record the problem, or clear it.
        Blocks (network): call it from a worker thread."""
        if entry.model is None:
            return
        try:
            entry.model.probe()
        except ProviderError as exc:
            entry.problem = str(exc)
        except Exception as exc:  # a probe must never take the server down
            entry.problem = f"{type(exc).__name__}: {exc}"
        else:
            entry.problem = None
        entry.probed = True


#: The catalogs this process rebuilt from a pickled configuration, by that configuration.
_REBUILT: dict[bytes, ProviderCatalog] = {}
_REBUILDING = threading.Lock()


def _rebuilt_catalog(configuration: tuple[Any, ...]) -> ProviderCatalog:
    """The catalog a pickled configuration describes, built once per process (its models
    keep their clients and rate limiters across tasks)."""
    memo = pickle.dumps(configuration)
    with _REBUILDING:
        catalog = _REBUILT.get(memo)
        if catalog is None:
            entries, prices, cache_folder, cache_roles = configuration
            catalog = ProviderCatalog(
                prices=prices,
                cache=ResultCache(cache_folder) if cache_folder is not None else None,
                cache_roles=cache_roles,
                configured=True,
            )
            for role, settings, default in entries:
                catalog._add(role, settings, os.environ, default=default)
            _REBUILT[memo] = catalog
    return catalog


def make_providers(
    chat: str = "procedural",
    image: str = "procedural",
    video: str = "procedural",
    environ: Mapping[str, str] | None = None,
) -> Providers:
    """The providers named for each role, built from their environment variables.

    Raises :class:`ProviderError` naming the role and what to fix when one cannot be
    built.
    """
    names = {"chat": chat, "image": image, "video": video}
    built = [build_model(role, ProviderSettings(provider=names[role]), environ) for role in ROLES]
    return Providers(*built)
