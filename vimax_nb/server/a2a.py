"""A2A's HTTP surface: the agent cards and the JSON-RPC endpoint, as thin Tornado
handlers over :mod:`vimax_nb.a2a`.

Every route is authenticated like the rest of vimax-nb (Jupyter's token, as
``Authorization: token <t>`` or ``Authorization: Bearer <t>``; 403 without one, before
any work) and asks the authorizer for ``read`` on ``vimax``; each JSON-RPC method then
asks for what it needs (``write`` to start or cancel a task), answering a refusal as a
JSON-RPC error. Streams are server-sent events, with a comment every
``PING_SECONDS`` while idle; a client that goes away stops its stream, not its workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from ..coordinator import AgentNotFound
from .access import refusal
from .base import ApiError, VimaxHandler, api, is_authorized

if TYPE_CHECKING:
    from ..a2a import A2AService, Answer, Stream

#: Seconds between the comments that keep an idle event stream open.
PING_SECONDS = 15.0
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


class A2AHandler(VimaxHandler):
    """The running A2A agent, the URLs it is reached at, and the card."""

    async def agent(self) -> A2AService:
        """vimax-nb's A2A agent (opened on first use)."""
        service = await self.service()
        return await service.a2a()

    def origin(self) -> str:
        """``scheme://host[:port]`` as the client reached this server."""
        return f"{self.request.protocol}://{self.request.host}"

    def rpc_url(self) -> str:
        """The absolute URL of the JSON-RPC endpoint, under the server's base_url."""
        return self.origin() + url_path_join(self.base_url, "vimax/a2a")

    async def reply_card(self) -> None:
        agent = await self.agent()
        self.reply(agent.card(self.rpc_url()))


class AgentCardHandler(A2AHandler):
    """``GET /vimax/a2a/.well-known/agent-card.json``: vimax-nb's agent card."""

    @api
    async def get(self) -> None:
        await self.reply_card()


class AgentOfCoordinatorCardHandler(A2AHandler):
    """``GET /vimax/api/agents/{name}/card``: the card of one of the coordinator's
    agents."""

    @api
    async def get(self, name: str) -> None:
        agent = await self.agent()
        try:
            card = agent.agent_card(name, self.rpc_url())
        except AgentNotFound as exc:
            raise ApiError(404, str(exc)) from None
        self.reply(card)


class A2AEndpointHandler(A2AHandler):
    """``POST /vimax/a2a``: A2A JSON-RPC (1.0, and 0.3's method names), streams as
    server-sent events; ``GET /vimax/a2a``: the agent card."""

    def initialize(self, **kwargs: Any) -> None:
        super().initialize(**kwargs)
        self._gone = asyncio.Event()

    def on_connection_close(self) -> None:
        self._gone.set()

    @api
    async def get(self) -> None:
        await self.reply_card()

    @web.authenticated
    async def post(self) -> None:
        await self.authorize("read")  # what every method needs; writes are asked per method
        agent = await self.agent()
        from ..a2a import Caller  # here: vimax_nb.a2a loads the a2a-sdk

        caller = Caller(owner=self.username(), scope=self.owner_scope(), origin=self.origin())

        async def authorize(action: str) -> str | None:
            allowed = await is_authorized(self, action)
            return None if allowed else refusal(self.username(), action)

        headers = {name: value for name, value in self.request.headers.get_all()}
        answer = await agent.answer(self.request.body, caller, headers, authorize)
        if isinstance(answer, dict):
            self.finish(json.dumps(answer, ensure_ascii=False))
            return
        await self._stream(answer)

    async def _stream(self, stream: Stream) -> None:
        """Send ``stream`` as server-sent events until it ends or the client goes away."""
        self.set_header("Content-Type", SSE_CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")
        rest = stream.rest
        pending: asyncio.Future[Answer] | None = None
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await self._send(stream.first)
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(rest))
                waiting: set[asyncio.Future[Any]] = {pending, gone}
                done, _ = await asyncio.wait(
                    waiting, timeout=PING_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if gone in done:
                    break
                if pending not in done:
                    self.write(": ping\n\n")
                    await self.flush()
                    continue
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    pending = None
                    break
                pending = None
                await self._send(item)
        except StreamClosedError:
            pass
        finally:
            gone.cancel()
            if pending is not None and not pending.done():
                pending.cancel()  # the client is gone: stop following; the workflow goes on
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                    await pending
            await rest.aclose()
        if not self._gone.is_set():
            self.finish(set_content_type=SSE_CONTENT_TYPE)

    async def _send(self, item: Answer) -> None:
        event = "event: error\n" if "error" in item else ""
        self.write(f"{event}data: {json.dumps(item, ensure_ascii=False)}\n\n")
        await self.flush()


#: The A2A routes, before the REST ones (``/vimax/api/agents/{name}/card`` before
#: ``/vimax/api/agents/{name}``).
a2a_handlers: list[tuple[str, type]] = [
    (r"/vimax/a2a", A2AEndpointHandler),
    (r"/vimax/a2a/\.well-known/agent-card\.json", AgentCardHandler),
    (r"/vimax/api/agents/([^/]+)/card", AgentOfCoordinatorCardHandler),
]
