"""The WebSocket endpoints: authenticated before the upgrade, then a thin adapter
between Tornado and the hub: each handler is its connection's
:class:`~vimax_nb.server.connection.FrameWriter` and feeds its
:class:`~vimax_nb.server.session.Session`."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import httputil, web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..protocol import COORDINATOR_ROOM, Subscribe, agent_room, workflow_room
from ..protocol.limits import parse_seq
from .access import refusal
from .app import VimaxService
from .base import RESOURCE, is_authorized, owner_name, owner_scope_of
from .connection import HubConnection
from .frames import Deflate
from .session import Session
from .wsprotocol import HubWebSocketProtocol, hub_websocket_protocol


class _VimaxWebSocket(WebSocketHandler, JupyterHandler):
    """Shared by the multiplexed and the single-room endpoints."""

    auth_resource = RESOURCE
    # Slots, like the protocol's: a handler's dict is full once Tornado and Jupyter are
    # done with it, and the socket keeps the handler as long as it lives.
    __slots__ = ("connection", "session")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.session: Session | None = None
        self.connection: HubConnection | None = None
        super().__init__(*args, **kwargs)

    @property
    def service(self) -> VimaxService:
        service: VimaxService = self.settings["vimax"]
        return service

    def check_origin(self, origin_to_satisfy_tornado: str = "") -> bool:
        # Jupyter's rule: same origin, an allowed origin, or a token-authenticated request.
        return bool(JupyterHandler.check_origin(self, origin_to_satisfy_tornado))

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.service.hub.limits.compression else None

    def get_websocket_protocol(self) -> HubWebSocketProtocol | None:
        # Tornado's, but deflate without context takeover, and 1007 for bad UTF-8.
        return hub_websocket_protocol(self)

    @property
    def max_message_size(self) -> int:
        return self.service.hub.limits.max_frame_size

    @property
    def ping_interval(self) -> float | None:
        return self.service.hub.limits.heartbeat_interval or None

    @property
    def ping_timeout(self) -> float | None:
        # Tornado allows at most one interval between a ping and its answer.
        return self.service.hub.limits.heartbeat_interval or None

    async def prepare(self) -> None:  # type: ignore[override]
        # Authenticated and authorized (read: each control asks for write) before the
        # upgrade, here rather than in get: the handshake and then the whole connection
        # run inside Tornado's get, and a get of ours would stay suspended around it, a
        # coroutine frame held by every connection for its life.
        await super().prepare(_redirect_to_login=False)
        if self.current_user is None:
            raise web.HTTPError(403, "the WebSocket needs a Jupyter token or login")
        if not await is_authorized(self, "read"):
            raise web.HTTPError(403, refusal(owner_name(self), "read"))
        await self.service.ensure_started()

    get = ws_authenticated(WebSocketHandler.get)

    async def authorize(self, action: str) -> bool:
        """Whether the authorizer lets this connection's user do ``action`` now."""
        return await is_authorized(self, action)

    def open(self, *args: str, **kwargs: str) -> None:
        # The 101 answer has gone: what was kept to write it (its headers, the login
        # cookie Jupyter sets) would otherwise live as long as the socket, ~3 KB each.
        self._headers = httputil.HTTPHeaders()
        self.__dict__.pop("_new_cookie", None)
        # The hub writes once per loop turn already: Nagle's algorithm would only hold
        # a write back until the client acknowledges the previous one.
        self.set_nodelay(True)
        service = self.service
        assert service.coordinator is not None
        self.connection = service.hub.register(self, owner_name(self) or "")
        self.session = Session(
            service.hub,
            service.coordinator,
            self.connection,
            authorize=self.authorize,
            owner_scope=owner_scope_of(self),
        )
        self.session.welcome()

    def on_message(self, message: str | bytes) -> None:
        if self.session is not None:
            self.session.receive(message)

    def on_close(self) -> None:
        if self.connection is not None:
            self.service.hub.unregister(self.connection)
        if self.session is not None:
            self.session.close()

    # -- the hub's FrameWriter ----------------------------------------------------

    @property
    def remote(self) -> str:
        return str(self.request.remote_ip)

    def deflate(self) -> Deflate | None:
        connection = self.ws_connection
        bits = getattr(connection, "deflate_window_bits", None)
        if bits is None:
            return None
        return Deflate(bits, self.service.hub.limits.compression_threshold)

    def write_frames(self, data: bytes) -> Awaitable[None]:
        connection = self.ws_connection
        stream = getattr(connection, "stream", None)
        if connection is None or connection.is_closing() or stream is None:
            raise WebSocketClosedError()
        written: Awaitable[None] = stream.write(data)
        return written

    def close_with(self, code: int, reason: str) -> None:
        self.close(code, reason[:120])


class MultiplexWebSocket(_VimaxWebSocket):
    """``/vimax/ws``: subscribe to any rooms."""


class RoomWebSocket(_VimaxWebSocket):
    """``/vimax/ws/workflow/{id}``, ``/vimax/ws/agent/{name}``, ``/vimax/ws/coordinator``:
    subscribed to one room on open; ``?after=N`` (and ``?epoch=``) resume."""

    def open(self, kind: str, name: str | None = None) -> None:  # type: ignore[override]
        super().open()
        assert self.session is not None
        room = {
            "workflow": lambda: workflow_room(name or ""),
            "agent": lambda: agent_room(name or ""),
        }.get(kind, lambda: COORDINATOR_ROOM)()
        try:  # a query Tornado cannot decode is an HTTPError
            request = Subscribe(
                room=room,
                after=parse_seq(self.get_argument("after", None)),
                epoch=self.get_argument("epoch", None),
            )
        except (ValueError, web.HTTPError) as exc:
            self.close(1008, f"bad query: {exc}"[:120])
            return
        self.session.receive_subscribe(request)
