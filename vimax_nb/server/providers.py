"""The server's providers: the catalog built from the traits and the providers file, and
the probes at start that say, in the log and in the agents' records, which are ready."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..coordinator import Coordinator
from ..providers import ProviderCatalog, ProviderEntry, ProviderSettings, Role
from ..providers.base import ROLES
from ..providers.cache import ResultCache
from ..providers.file import ProvidersFile, ProvidersFileError, load_providers_file
from ..providers.prices import PriceTable

if TYPE_CHECKING:
    from .app import VimaxApp

__all__ = ["configure_providers", "probe_providers"]


def configure_providers(
    app: VimaxApp, root: Path, workdir: Path
) -> tuple[ProviderCatalog, float | None]:
    """The catalog of providers the traits and the providers file configure, and the
    default ``max_cost`` of workflows. Blocks (it imports the providers' SDKs).

    Nothing here raises: a providers file that cannot be used makes every role's
    default provider not ready, with the file's error as the problem, so runs fail at
    once with it (nothing falls back to procedural); each problem is logged.
    """
    log = app.log
    file = ProvidersFile(path=Path())
    if app.providers_file:
        path = Path(app.providers_file)
        try:
            file = load_providers_file(path if path.is_absolute() else root / path)
        except ProvidersFileError as exc:
            log.error("vimax-nb: the providers file is not used: %s", exc)
            return _broken(str(exc)), app.max_cost
    traits: dict[Role, str] = {
        "chat": app.chat_provider,
        "image": app.image_provider,
        "video": app.video_provider,
    }
    defaults: dict[Role, ProviderSettings] = {}
    also: dict[Role, list[ProviderSettings]] = {
        role: list(file.also.get(role, [])) for role in ROLES
    }
    for role in ROLES:
        from_file = file.roles.get(role)
        name = traits[role].strip()
        if name and (from_file is None or from_file.provider != name):
            defaults[role] = ProviderSettings(provider=name)
            if from_file is not None:
                also[role].append(from_file)
        elif from_file is not None:
            defaults[role] = from_file
    cache_roles = app.cache_roles if app.cache_roles is not None else file.cache
    catalog = ProviderCatalog.configure(
        defaults,
        also,
        prices=PriceTable(file.prices),
        cache=ResultCache(workdir / "cache"),
        cache_roles=ROLES if cache_roles is None else [r for r in ROLES if r in cache_roles],
    )
    for entry in catalog.entries:
        _log_entry(log, entry, at_start=True)
    return catalog, app.max_cost if app.max_cost is not None else file.max_cost


def _broken(reason: str) -> ProviderCatalog:
    catalog = ProviderCatalog.configure({})
    for entry in catalog.entries:
        entry.default = False
    for role in ROLES:
        settings = ProviderSettings(provider="procedural")
        broken = ProviderEntry(role, "providers_file", settings, problem=reason, default=True)
        catalog.entries.append(broken)
    return catalog


def _log_entry(log: logging.Logger, entry: ProviderEntry, *, at_start: bool = False) -> None:
    role = "default " + entry.role if entry.default else entry.role
    if entry.problem is not None:
        log.error("vimax-nb: %s provider %r is not ready: %s", role, entry.name, entry.problem)
    elif not at_start or entry.name == "procedural":
        log.info("vimax-nb: %s provider %r ready (%s)", role, entry.name, entry.model_name)


async def probe_providers(
    catalog: ProviderCatalog, coordinator: Coordinator, log: logging.Logger
) -> None:
    """Probe every built hosted provider at once, in worker threads; log each answer and
    report the agents again, so their records show the readiness found."""
    hosted = [e for e in catalog.entries if e.model is not None and e.name != "procedural"]
    if not hosted:
        return
    await asyncio.gather(*(asyncio.to_thread(catalog.probe, entry) for entry in hosted))
    for entry in hosted:
        _log_entry(log, entry)
    for agent in coordinator.agents:
        coordinator.reporter.agent_changed(agent)
