"""ipywidgets for vimax-nb: live panels that only draw what the client's objects hold.

How IPython shows a :class:`~vimax_nb.client.Run` (as its :class:`WorkflowProgress`) is
:func:`vimax_nb.display.show_runs_as_widgets`'s business, not this package's.
"""

from __future__ import annotations

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
]
