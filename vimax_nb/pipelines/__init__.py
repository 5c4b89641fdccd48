"""ViMax's pipelines (Idea2Video, Script2Video) as agent workflows."""

from __future__ import annotations

from pathlib import Path

from ..coordinator import Coordinator
from ..providers import Providers, make_providers
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


def register_vimax(coordinator: Coordinator, providers: Providers | None = None) -> None:
    """Give ``coordinator`` ViMax's agents and both pipelines.

    ``providers`` defaults to the offline procedural ones. The coordinator needs a
    ``workdir``: each workflow's files go to ``<workdir>/<workflow id>/``.
    """
    if coordinator.workdir is None:
        raise ValueError("the ViMax pipelines write files: give the Coordinator a workdir")
    providers = providers or make_providers()
    for agent in vimax_agents(providers):
        coordinator.register_agent(agent)
    workdir = Path(coordinator.workdir)
    coordinator.register_pipeline(Idea2VideoPipeline(workdir))
    coordinator.register_pipeline(Script2VideoPipeline(workdir))
