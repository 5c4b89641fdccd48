"""vimax-nb: launch and watch agentic video-generation workflows from Jupyter.

The notebook API::

    import vimax_nb as vx
    client = vx.connect()      # the server this kernel runs under, else a private one
    run = vx.idea2video("A lighthouse keeper befriends a whale", style="watercolor")
    run                        # a live WorkflowProgress widget
    result = run.wait()        # the video path, story, script, frames
    vx.AgentMonitor()          # every agent and the coordinator, live
    vx.workflows()             # past and running workflows, as a table

``import vimax_nb`` is light: the client, its WebSocket library and the widgets are
imported when first used (``vx.Client``, ``vx.connect()``, ``vx.AgentMonitor``...), and
nothing is installed into IPython. The first client or run made here (``connect``,
``idea2video``, ``script2video``, ``workflows``), or the first ``vx.Client``, ``vx.Run``
or widget asked for, tells a running IPython to show a :class:`Run` as its live
:class:`WorkflowProgress` (:func:`vimax_nb.display.show_runs_as_widgets`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .client import (
        Client,
        Run,
        RunCanceled,
        RunFailed,
        RunInterrupted,
        RunResult,
        VimaxConnectError,
        VimaxError,
    )
    from .client.discovery import default_client, disconnect
    from .client.table import WorkflowTable
    from .display import show_runs_as_widgets
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

# Where each lazily imported name lives.
_CLIENT = ("Client", "Run", "RunCanceled", "RunFailed", "RunInterrupted", "RunResult")
_LAZY: dict[str, str] = {
    **dict.fromkeys((*_CLIENT, "VimaxConnectError", "VimaxError"), ".client"),
    "default_client": ".client.discovery",
    "disconnect": ".client.discovery",
    "WorkflowTable": ".client.table",
    "show_runs_as_widgets": ".display",
}
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
# Asking for one of these means runs are about to be made (or shown) here.
_SHOWS_RUNS = _WIDGETS | {"Client", "Run"}


def _show_runs_in_ipython() -> None:
    """Tell a running IPython to show runs as their panels (nothing without one)."""
    from .display import show_runs_as_widgets

    show_runs_as_widgets()


def connect(url: str | None = None, token: str | None = None, **options: Any) -> Client:
    """The process's default :class:`Client`: :func:`vimax_nb.client.connect` with the
    same arguments (``start_server``, ``workdir``, ``server_args`` are keywords); in
    IPython, runs then display as their live :class:`WorkflowProgress`."""
    from .client import connect as find

    client = find(url, token, **options)
    _show_runs_in_ipython()
    return client


def _client() -> Client:
    from .client.discovery import default_client

    return default_client() or connect()


def idea2video(idea: str, *, priority: int = 0, **params: Any) -> Run:
    """Start an Idea2Video workflow on the default client's server; its live :class:`Run`.

    ``params`` are the workflow parameters: ``style``, ``user_requirement``, ``scenes``,
    ``shots_per_scene``, ``width``, ``height``, ``fps``, ``seconds_per_shot``, ``seed``.
    ``priority`` (-10 to 10, higher first) puts its tasks ahead of those of
    lower-priority workflows on the server.
    """
    run = _client().idea2video(idea, priority=priority, **params)
    _show_runs_in_ipython()
    return run


def script2video(script: str, *, priority: int = 0, **params: Any) -> Run:
    """Start a Script2Video workflow on the default client's server; its live :class:`Run`
    (``priority`` as for :func:`idea2video`)."""
    run = _client().script2video(script, priority=priority, **params)
    _show_runs_in_ipython()
    return run


def workflows() -> WorkflowTable:
    """Every workflow the default client's server knows, newest first, as a table."""
    from .client.table import WorkflowTable

    return WorkflowTable(_client().workflows())


def __getattr__(name: str) -> Any:
    where = ".widgets" if name in _WIDGETS else _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'vimax_nb' has no attribute {name!r}")
    value = getattr(import_module(where, __name__), name)
    if name in _SHOWS_RUNS:
        _show_runs_in_ipython()
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
