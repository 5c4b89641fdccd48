"""vimax-nb: launch and watch agentic video-generation workflows from Jupyter.

The notebook API::

    import vimax_nb as vx
    client = vx.connect()      # the server this kernel runs under, else a private one
    run = vx.idea2video("A lighthouse keeper befriends a whale", style="watercolor")
    run                        # a live WorkflowProgress widget
    result = run.wait()        # the video path, story, script, frames
    vx.AgentMonitor()          # every agent and the coordinator, live
    vx.workflows()             # past and running workflows, as a table

The widgets are imported on first use, so the client works without a display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .client import (
    Client,
    Run,
    RunCanceled,
    RunFailed,
    RunInterrupted,
    RunResult,
    VimaxConnectError,
    VimaxError,
    connect,
)
from .client.discovery import default_client, disconnect
from .client.table import WorkflowTable
from .display import show_runs_as_widgets

if TYPE_CHECKING:
    from .widgets import (
        AgentMonitor,
        AgentStatusCard,
        Idea2VideoLauncher,
        RequestLauncher,
        Script2VideoLauncher,
        WorkflowProgress,
    )

__all__ = [
    "AgentMonitor",
    "AgentStatusCard",
    "Client",
    "Idea2VideoLauncher",
    "RequestLauncher",
    "Run",
    "RunCanceled",
    "RunFailed",
    "RunInterrupted",
    "RunResult",
    "Script2VideoLauncher",
    "VimaxConnectError",
    "VimaxError",
    "WorkflowProgress",
    "WorkflowTable",
    "__version__",
    "connect",
    "default_client",
    "disconnect",
    "idea2video",
    "script2video",
    "show_runs_as_widgets",
    "workflows",
]

_WIDGETS = frozenset(
    {
        "AgentMonitor",
        "AgentStatusCard",
        "Idea2VideoLauncher",
        "RequestLauncher",
        "Script2VideoLauncher",
        "WorkflowProgress",
    }
)


def _client() -> Client:
    return default_client() or connect()


def idea2video(idea: str, **params: Any) -> Run:
    """Start an Idea2Video workflow on the default client's server; its live :class:`Run`.

    ``params`` are the workflow parameters: ``style``, ``user_requirement``, ``scenes``,
    ``shots_per_scene``, ``width``, ``height``, ``fps``, ``seconds_per_shot``, ``seed``.
    """
    return _client().idea2video(idea, **params)


def script2video(script: str, **params: Any) -> Run:
    """Start a Script2Video workflow on the default client's server; its live :class:`Run`."""
    return _client().script2video(script, **params)


def workflows() -> WorkflowTable:
    """Every workflow the default client's server knows, newest first, as a table."""
    return WorkflowTable(_client().workflows())


def __getattr__(name: str) -> Any:
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'vimax_nb' has no attribute {name!r}")


show_runs_as_widgets()
