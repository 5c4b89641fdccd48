"""The Jupyter server extension (enabled as ``vimax_nb.server``): REST and WebSocket.

The handlers, the hub and the coordinator are imported only when the server loads
the extension, so ``jupyter server extension list`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import VimaxApp

    return [{"module": "vimax_nb.server", "app": VimaxApp}]
