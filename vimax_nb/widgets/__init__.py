"""ipywidgets for vimax-nb: live panels that only draw what the client's objects hold."""

from __future__ import annotations

from ..display import show_runs_as_widgets
from .agents import AgentStatusCard
from .launchers import Idea2VideoLauncher, RequestLauncher, Script2VideoLauncher
from .monitor import AgentMonitor
from .progress import WorkflowProgress

__all__ = [
    "AgentMonitor",
    "AgentStatusCard",
    "Idea2VideoLauncher",
    "RequestLauncher",
    "Script2VideoLauncher",
    "WorkflowProgress",
    "show_runs_as_widgets",
]
