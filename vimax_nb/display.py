"""How IPython shows a :class:`~vimax_nb.client.Run`: as its live progress panel.

This module imports neither ipywidgets nor IPython: the panel is built (and the widgets
imported) only when IPython first displays a run. The notebook API (:mod:`vimax_nb`)
installs the hook when it makes its first client or run, or hands out a widget, and
only in a running IPython; nothing is installed by importing this module.
"""

from __future__ import annotations

import sys
from typing import Any

from .client import Run

__all__ = ["show_runs_as_widgets"]


def _show_run(run: Run) -> None:
    """Display ``run``'s panel as an output the panel updates when the run's state
    changes, so a saved notebook's text fallback tells the state it ended in."""
    from .widgets import WorkflowProgress

    WorkflowProgress(run)._ipython_display_()


def show_runs_as_widgets(shell: Any = None) -> bool:
    """Make IPython display every :class:`~vimax_nb.client.Run` as a live
    :class:`~vimax_nb.widgets.WorkflowProgress`; True when there is a shell to tell.

    Without ``shell``, the running IPython's, if IPython is loaded (it is not imported).
    Calling it again changes nothing.
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    shell.display_formatter.ipython_display_formatter.for_type(Run, _show_run)
    return True
