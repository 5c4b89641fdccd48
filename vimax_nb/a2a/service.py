"""vimax-nb's A2A agent: the SDK's request handler over the coordinator, the JSON-RPC
binding, the cards; opened on a running coordinator and store, closed before them."""

from __future__ import annotations

from typing import Any

from a2a.server.context import ServerCallContext

from ..coordinator import Coordinator
from ..store import Store
from .caller import Caller, call_context
from .card import agent_card_json, service_card, service_card_json
from .handler import WorkflowRequestHandler
from .jsonrpc import Answer, Authorize, JsonRpc, Stream

__all__ = ["A2AService", "Answer", "Caller", "Stream"]


class A2AService:
    """The A2A agent of one running vimax-nb service."""

    def __init__(self, coordinator: Coordinator, store: Store) -> None:
        self.coordinator = coordinator
        # The handler reads its card only for the capabilities it gates methods by; the
        # card served names the URL the client used (see :meth:`card`).
        self.handler = WorkflowRequestHandler(coordinator, store, service_card("/vimax/a2a"))
        self.rpc = JsonRpc(self.handler)

    @classmethod
    async def open(cls, coordinator: Coordinator, store: Store) -> A2AService:
        """The agent of a started coordinator and its store (its tasks' table ready)."""
        service = cls(coordinator, store)
        await service.handler.tasks.open()
        return service

    async def close(self) -> None:
        """Stop following workflows (they go on) and close the SDK's running tasks."""
        await self.handler.aclose()

    def card(self, rpc_url: str, documentation_url: str = "") -> dict[str, Any]:
        """vimax-nb's agent card, with its endpoint at ``rpc_url``."""
        return service_card_json(rpc_url, documentation_url)

    def agent_card(self, name: str, rpc_url: str) -> dict[str, Any]:
        """The card of the coordinator's agent ``name`` (AgentNotFound if none)."""
        return agent_card_json(self.coordinator.agents.get(name), rpc_url)

    async def answer(
        self, body: bytes, caller: Caller, headers: dict[str, str], authorize: Authorize
    ) -> Answer | Stream:
        """The answer to a JSON-RPC request ``body`` of ``caller`` (see
        :meth:`JsonRpc.answer`)."""
        context: ServerCallContext = call_context(caller, headers)
        return await self.rpc.answer(body, context, authorize)
