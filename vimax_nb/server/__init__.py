"""The Jupyter server extension (enabled as ``vimax_nb.server``): REST and WebSocket.

This module imports only the version. Asking for the extension points (as ``jupyter
server extension list`` does too) imports :mod:`.app`, and with it the coordinator, the
pipelines, the store and the hub; the REST and WebSocket handlers are imported only
when the server loads the extension.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import VimaxApp

    return [{"module": "vimax_nb.server", "app": VimaxApp}]
