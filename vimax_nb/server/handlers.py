"""The REST surface of vimax-nb: thin Tornado handlers over the coordinator, the store
and the hub, and the route table.

Every route goes through Jupyter's identity provider and authorizer
(``auth_resource = "vimax"``). Errors are JSON ``{"message": ...}`` with a message a
person can act on, plus ``errors`` (bad workflow parameters) or ``state`` (a control
action the workflow's state does not allow). The URLs are a contract (docs/protocol.md,
"REST").
"""

from __future__ import annotations

import json

from jupyter_server.utils import url_path_join
from pydantic import ValidationError

from ..coordinator import AgentNotFound, InvalidTransition, UnknownPipeline, WorkflowNotFound
from ..pipelines.calls import provider_status
from ..protocol import ControlAction, priority_problem, unstored_data, workflow_room
from .artifacts import ArtifactHandler
from .base import ApiError, VimaxHandler, api, workflow_not_found
from .websocket import MultiplexWebSocket, RoomWebSocket

EVENTS_LIMIT_DEFAULT = 1000
EVENTS_LIMIT_MAX = 10_000


def _field_problems(error: ValidationError) -> list[dict[str, str]]:
    """One ``{"field", "problem"}`` per wrong parameter, worded for a person."""
    problems: list[dict[str, str]] = []
    for err in error.errors():
        field = ".".join(str(part) for part in err["loc"])
        kind = err["type"]
        if kind == "missing":
            problem = f"{field!r} is required"
        elif kind == "extra_forbidden":
            problem = f"{field!r} is not a parameter of this kind of workflow"
        else:
            got = json.dumps(err.get("input"), default=str)
            if len(got) > 60:
                got = got[:57] + "..."
            problem = f"{field!r}: {err['msg'][:1].lower()}{err['msg'][1:]} (got {got})"
        problems.append({"field": field, "problem": problem})
    return problems


class WorkflowsHandler(VimaxHandler):
    """``GET /vimax/api/workflows``: every workflow; ``POST``: start one (``kind``,
    ``params`` and an optional ``priority`` from -10 to 10)."""

    @api
    async def get(self) -> None:
        coordinator = await self.coordinator()
        records = await coordinator.list_workflows()
        self.reply({"workflows": [r.model_dump(mode="json") for r in records]})

    @api
    async def post(self) -> None:
        coordinator = await self.coordinator()
        known = ", ".join(sorted(coordinator.pipelines)) or "none"
        body = self.json_body()
        kind = body.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ApiError(
                400, f"'kind' is required: the kind of workflow to start (known kinds: {known})"
            )
        params = body.get("params", {})
        if not isinstance(params, dict):
            raise ApiError(400, "'params' must be a JSON object of the workflow's parameters")
        extra = sorted(set(body) - {"kind", "params", "priority"})
        if extra:
            raise ApiError(
                400,
                f"unexpected field(s) {', '.join(map(repr, extra))}; send 'kind', 'params' "
                "and, if you like, 'priority'",
            )
        priority = body.get("priority", 0)
        problem = priority_problem(priority)
        if problem is not None:
            raise ApiError(400, problem)
        try:
            record = await coordinator.submit(
                kind, params, owner=self.username(), priority=priority
            )
        except UnknownPipeline as exc:
            raise ApiError(400, str(exc), known_kinds=sorted(coordinator.pipelines)) from None
        except ValidationError as exc:
            problems = _field_problems(exc)
            message = f"invalid parameters for {kind}: " + "; ".join(p["problem"] for p in problems)
            raise ApiError(400, message, errors=problems) from None
        except ValueError as exc:
            raise ApiError(400, f"invalid parameters for {kind}: {exc}") from None
        self.set_header("Location", url_path_join(self.base_url, "vimax/api/workflows", record.id))
        self.reply(record.model_dump(mode="json"), 201)


class WorkflowHandler(VimaxHandler):
    """``GET /vimax/api/workflows/{id}``."""

    @api
    async def get(self, workflow_id: str) -> None:
        record = await self.workflow_or_404(workflow_id)
        self.reply(record.model_dump(mode="json"))


class WorkflowControlHandler(VimaxHandler):
    """``POST /vimax/api/workflows/{id}/(pause|resume|cancel)``."""

    @api
    async def post(self, workflow_id: str, action: str) -> None:
        coordinator = await self.coordinator()
        try:
            record = await coordinator.control(workflow_id, ControlAction(action))
        except WorkflowNotFound:
            raise workflow_not_found(workflow_id) from None
        except InvalidTransition as exc:
            raise ApiError(409, str(exc), state=exc.current.value) from None
        except UnknownPipeline as exc:
            current = await self.workflow_or_404(workflow_id)
            raise ApiError(409, str(exc), state=current.state.value) from None
        self.reply(record.model_dump(mode="json"))


class WorkflowEventsHandler(VimaxHandler):
    """``GET /vimax/api/workflows/{id}/events?after=N&limit=M``: the stored events.

    The events are the log's frames spliced in as they are stored, byte for byte.
    """

    @api
    async def get(self, workflow_id: str) -> None:
        after = self.int_argument("after", 0, 0)
        limit = self.int_argument("limit", EVENTS_LIMIT_DEFAULT, 1, EVENTS_LIMIT_MAX)
        await self.workflow_or_404(workflow_id)
        log = (await self.store()).events
        room = workflow_room(workflow_id)
        events = await log.read(room, after, limit)
        # An event committed but not yet delivered on the loop can be read before
        # the log's top counts it: the top is never below the last event returned.
        top = max(log.top(room), events[-1].seq if events else 0)
        head = {
            "workflow_id": workflow_id,
            "epoch": log.epoch,
            "top": top,
            "floor": log.floor(room),
        }
        body = json.dumps(head).encode()[:-1] + b',"events":['
        body += b",".join(event.frame for event in events) + b"]}"
        self.finish(body)


class AgentsHandler(VimaxHandler):
    """``GET /vimax/api/agents``."""

    @api
    async def get(self) -> None:
        coordinator = await self.coordinator()
        self.reply({"agents": [r.model_dump(mode="json") for r in coordinator.agent_records()]})


class AgentHandler(VimaxHandler):
    """``GET /vimax/api/agents/{name}``."""

    @api
    async def get(self, name: str) -> None:
        coordinator = await self.coordinator()
        try:
            agent = coordinator.agents.get(name)
        except AgentNotFound as exc:
            raise ApiError(404, str(exc)) from None
        self.reply(agent.record().model_dump(mode="json"))


class ProvidersHandler(VimaxHandler):
    """``GET /vimax/api/providers``: every configured provider per role, with its model
    and readiness."""

    @api
    async def get(self) -> None:
        service = await self.service()
        assert service.catalog is not None
        statuses = [provider_status(entry) for entry in service.catalog.entries]
        self.reply({"providers": [s.model_dump(mode="json") for s in statuses]})


class CoordinatorHandler(VimaxHandler):
    """``GET /vimax/api/coordinator``: the coordinator's metrics now, with the hub's
    connections."""

    @api
    async def get(self) -> None:
        service = await self.service()
        assert service.coordinator is not None
        self.reply(unstored_data(service.hub.with_connections(service.coordinator.metrics())))


class HubStatsHandler(VimaxHandler):
    """``GET /vimax/ws/stats``: the WebSocket hub's figures."""

    @api
    async def get(self) -> None:
        service = await self.service()
        self.reply(service.hub.stats())


class HubClientHandler(VimaxHandler):
    """``GET /vimax/ws/client/{client_id}``: one WebSocket connection's metadata."""

    @api
    async def get(self, client_id: str) -> None:
        service = await self.service()
        info = service.hub.client_info(client_id)
        if info is None:
            raise ApiError(
                404,
                f"no WebSocket client {client_id!r} is connected; "
                "GET /vimax/ws/stats lists the connected clients by room",
            )
        self.reply(info)


rest_handlers: list[tuple[str, type]] = [
    (r"/vimax/api/workflows", WorkflowsHandler),
    (r"/vimax/api/workflows/([^/]+)", WorkflowHandler),
    (r"/vimax/api/workflows/([^/]+)/(pause|resume|cancel)", WorkflowControlHandler),
    (r"/vimax/api/workflows/([^/]+)/events", WorkflowEventsHandler),
    (r"/vimax/api/workflows/([^/]+)/artifacts/(.+)", ArtifactHandler),
    (r"/vimax/api/agents", AgentsHandler),
    (r"/vimax/api/agents/(.+)", AgentHandler),
    (r"/vimax/api/providers", ProvidersHandler),
    (r"/vimax/api/coordinator", CoordinatorHandler),
    (r"/vimax/ws/stats", HubStatsHandler),
    (r"/vimax/ws/client/([^/]+)", HubClientHandler),
]

websocket_handlers: list[tuple[str, type]] = [
    (r"/vimax/ws", MultiplexWebSocket),
    (r"/vimax/ws/(workflow|agent)/(.+)", RoomWebSocket),
    (r"/vimax/ws/(coordinator)", RoomWebSocket),
]

default_handlers: list[tuple[str, type]] = rest_handlers + websocket_handlers
