"""ipywidgets for vimax-nb: live panels that only draw what the client's objects hold."""

from __future__ import annotations

from typing import Any

from ..client import Run
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


def show_runs_as_widgets(shell: Any = None) -> bool:
    """Make IPython display every :class:`~vimax_nb.client.Run` as a live
    :class:`WorkflowProgress`; True when there is a shell to tell.

    The client never imports ipywidgets: the widgets tell IPython how to show a run.
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False

    def show(run: Run, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return WorkflowProgress(run)._repr_mimebundle_(include=include, exclude=exclude)

    shell.display_formatter.mimebundle_formatter.for_type(Run, show)
    return True


show_runs_as_widgets()
