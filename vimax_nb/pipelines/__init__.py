"""ViMax's pipelines (Idea2Video, Script2Video) as agent workflows.

The pipelines and agents (which need the coordinator, Pillow and PyAV) are imported on
first use, so ``vimax_nb.pipelines.params`` and ``.request`` stay quick to import for
the client, the CLI and the launchers.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..coordinator import Coordinator
    from ..providers import Providers
    from .agents import vimax_agents
    from .idea2video import Idea2VideoPipeline
    from .params import Idea2VideoParams, Script2VideoParams
    from .script2video import Script2VideoPipeline

__all__ = [
    "Idea2VideoParams",
    "Idea2VideoPipeline",
    "Script2VideoParams",
    "Script2VideoPipeline",
    "register_vimax",
    "vimax_agents",
]

_HOMES = {
    "Idea2VideoParams": ".params",
    "Script2VideoParams": ".params",
    "Idea2VideoPipeline": ".idea2video",
    "Script2VideoPipeline": ".script2video",
    "vimax_agents": ".agents",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home, __name__), name)


def register_vimax(coordinator: Coordinator, providers: Providers | None = None) -> None:
    """Give ``coordinator`` ViMax's agents and both pipelines.

    ``providers`` defaults to the offline procedural ones. The coordinator needs a
    ``workdir``: each workflow's files go to ``<workdir>/<workflow id>/``.
    """
    from ..providers import make_providers
    from .agents import vimax_agents
    from .idea2video import Idea2VideoPipeline
    from .script2video import Script2VideoPipeline

    if coordinator.workdir is None:
        raise ValueError("the ViMax pipelines write files: give the Coordinator a workdir")
    providers = providers or make_providers()
    for agent in vimax_agents(providers):
        coordinator.register_agent(agent)
    workdir = Path(coordinator.workdir)
    coordinator.register_pipeline(Idea2VideoPipeline(workdir))
    coordinator.register_pipeline(Script2VideoPipeline(workdir))
