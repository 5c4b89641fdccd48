"""ViMax's pipelines (Idea2Video, Script2Video) as agent workflows.

Modules: :mod:`.params` (the workflows' parameters), :mod:`.request` (requests in plain
words), :mod:`.models` (the shapes ViMax's agents pass), :mod:`.agents`, :mod:`.prompts`,
:mod:`.editing`, :mod:`.base`, :mod:`.idea2video` and :mod:`.script2video`.

Importing this package, :mod:`.params` or :mod:`.request` loads no coordinator, store,
Pillow, PyAV or provider implementation (``.request`` loads only
:mod:`vimax_nb.providers.base`), so the CLI and the launcher forms may use them. The
other modules need the coordinator or the media libraries; :func:`register_vimax`
imports them when it is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..coordinator import Coordinator
    from ..providers import ProviderCatalog, Providers

__all__ = ["register_vimax"]


def register_vimax(
    coordinator: Coordinator,
    providers: ProviderCatalog | Providers | None = None,
    *,
    max_cost: float | None = None,
) -> None:
    """Give ``coordinator`` ViMax's agents and both pipelines.

    ``providers`` is the catalog workflows pick their providers from, or one fixed set
    of models; it defaults to the offline procedural ones. ``max_cost`` is the budget
    of workflows that set none. The coordinator needs a ``workdir``: each workflow's
    files go to ``<workdir>/<workflow id>/``.
    """
    from ..providers import ProviderCatalog, make_providers
    from .agents import vimax_agents
    from .idea2video import Idea2VideoPipeline
    from .script2video import Script2VideoPipeline

    if coordinator.workdir is None:
        raise ValueError("the ViMax pipelines write files: give the Coordinator a workdir")
    if not isinstance(providers, ProviderCatalog):
        providers = ProviderCatalog.of(providers or make_providers())
    for agent in vimax_agents(providers):
        coordinator.register_agent(agent)
    workdir = Path(coordinator.workdir)
    coordinator.register_pipeline(Idea2VideoPipeline(workdir, providers, max_cost=max_cost))
    coordinator.register_pipeline(Script2VideoPipeline(workdir, providers, max_cost=max_cost))
