"""The vimax-nb client: talks to the server extension over its WebSocket and REST."""

from .api import (
    Client,
    EventPage,
    Run,
    RunCanceled,
    RunFailed,
    RunInterrupted,
    RunResult,
    VimaxError,
)
from .connection import Connection
from .discovery import VimaxConnectError, connect

__all__ = [
    "Client",
    "Connection",
    "EventPage",
    "Run",
    "RunCanceled",
    "RunFailed",
    "RunInterrupted",
    "RunResult",
    "VimaxConnectError",
    "VimaxError",
    "connect",
]
