"""The vimax-nb client: talks to the server extension over its WebSocket and REST.

:class:`Client` reads over REST and follows workflows through one shared
:class:`ClientConnection` (a reconnecting WebSocket on its own thread); a :class:`Run` is
a live view of one workflow. Everything read from the server is a model of
:mod:`vimax_nb.protocol`. This package imports nothing of the server's half.
"""

from .api import Client, EventPage, WorkflowPage
from .connection import ClientConnection
from .discovery import VimaxConnectError, connect
from .errors import RunCanceled, RunFailed, RunInterrupted, VimaxError
from .outbox import RequestError
from .reconnecting import ConnectionState, SocketOptions
from .rooms import RoomSubscription
from .run import Run, RunResult

__all__ = [
    "Client",
    "ClientConnection",
    "ConnectionState",
    "EventPage",
    "RequestError",
    "RoomSubscription",
    "Run",
    "RunCanceled",
    "RunFailed",
    "RunInterrupted",
    "RunResult",
    "SocketOptions",
    "VimaxConnectError",
    "VimaxError",
    "WorkflowPage",
    "connect",
]
