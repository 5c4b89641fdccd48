"""The REST surface of vimax-nb: thin Tornado handlers over the coordinator, the store
and the hub, and the route table.

Every route goes through Jupyter's identity provider and authorizer (resource
``vimax``: GET needs ``read``, POST ``write``; see :func:`.base.api`); with
``c.VimaxApp.owner_only`` a workflow of another owner answers as an unknown one.
Errors are JSON ``{"message": ...}`` with a message a person can act on, plus
``errors`` (bad workflow parameters) or ``state`` (a control action the workflow's state
does not allow). The URLs are a contract (docs/protocol.md, "REST").
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.utils import url_path_join
from pydantic import ValidationError

from ..coordinator import (
    AgentNotFound,
    DiskQuotaExceeded,
    InvalidTransition,
    QuotaExceeded,
    TooManyWorkflows,
    UnknownPipeline,
    WorkflowNotFound,
    WorkflowTooLarge,
)
from ..pipelines.calls import provider_status
from ..protocol import ControlAction, priority_problem, unstored_data, workflow_room
from ..store.workflows import parse_cursor
from .a2a import a2a_handlers
from .artifacts import ArtifactHandler
from .base import ApiError, VimaxHandler, api, workflow_not_found
from .websocket import MultiplexWebSocket, RoomWebSocket

EVENTS_LIMIT_DEFAULT = 1000
EVENTS_LIMIT_MAX = 10_000
WORKFLOWS_LIMIT_DEFAULT = 100
WORKFLOWS_LIMIT_MAX = 1000


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


def _quota_error(exc: QuotaExceeded) -> ApiError:
    """The HTTP answer to a refused workflow: 429 with ``Retry-After`` while too many run
    (it passes), 422 for one too large (asking again will not help), 507 for a full
    workdir (``vimax-nb gc`` helps)."""
    if isinstance(exc, TooManyWorkflows):
        status = 429
    elif isinstance(exc, WorkflowTooLarge):
        status = 422
    elif isinstance(exc, DiskQuotaExceeded):
        status = 507
    else:
        status = 429
    fields: dict[str, Any] = {"quota": exc.quota, "limit": exc.limit, "figure": exc.figure}
    headers = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
        fields["retry_after"] = exc.retry_after
    return ApiError(status, str(exc), headers=headers, **fields)


class WorkflowsHandler(VimaxHandler):
    """``GET /vimax/api/workflows?limit=N&before=CURSOR``: a page of the workflows
    (those the user may see), newest first, with the ``next`` page's cursor and the
    ``total``; ``POST``: start one (``kind``, ``params`` and an optional ``priority``
    from -10 to 10), unless a quota refuses it (429, 422 or 507)."""

    @api
    async def get(self) -> None:
        limit = self.int_argument("limit", WORKFLOWS_LIMIT_DEFAULT, 1, WORKFLOWS_LIMIT_MAX)
        cursor = self.get_query_argument("before", None) or None
        try:
            before = parse_cursor(cursor) if cursor is not None else None
        except ValueError as exc:
            raise ApiError(400, f"before: {exc}") from None
        coordinator = await self.coordinator()
        page = await coordinator.page_workflows(limit, before, owner=self.owner_scope())
        self.reply(
            {
                "workflows": [r.model_dump(mode="json") for r in page.records],
                "next": page.next,
                "total": page.total,
            }
        )

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
        except QuotaExceeded as exc:
            raise _quota_error(exc) from None
        except ValidationError as exc:
            problems = _field_problems(exc)
            message = f"invalid parameters for {kind}: " + "; ".join(p["problem"] for p in problems)
            raise ApiError(400, message, errors=problems) from None
        except ValueError as exc:
            raise ApiError(400, f"invalid parameters for {kind}: {exc}") from None
        self.set_header("Location", url_path_join(self.base_url, "vimax/api/workflows", record.id))
        self.reply(record.model_dump(mode="json"), 201)


class CollectHandler(VimaxHandler):
    """``POST /vimax/api/gc`` ``{"older_than": seconds, "dry_run": bool}`` (both
    optional): remove the finished workflows (of the user's scope) that ended more than
    ``older_than`` seconds ago (default: ``c.VimaxApp.retention_days``) with their
    files; answers what was removed (or, with ``dry_run``, would be) and the bytes."""

    @api
    async def post(self) -> None:
        body = self.json_body() if self.request.body else {}
        extra = sorted(set(body) - {"older_than", "dry_run"})
        if extra:
            raise ApiError(
                400,
                f"unexpected field(s) {', '.join(map(repr, extra))}; send 'older_than' "
                "(seconds) and 'dry_run' (true or false), both optional",
            )
        older_than = body.get("older_than")
        if older_than is not None and (
            isinstance(older_than, bool)
            or not isinstance(older_than, int | float)
            or not 0 <= older_than < float("inf")
        ):
            raise ApiError(
                400,
                f"'older_than' must be a number of seconds, 0 or more (got "
                f"{json.dumps(older_than)}); leave it out for c.VimaxApp.retention_days",
            )
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ApiError(400, f"'dry_run' must be true or false (got {json.dumps(dry_run)})")
        coordinator = await self.coordinator()
        collection = await coordinator.collect(
            None if older_than is None else float(older_than),
            dry_run=dry_run,
            owner=self.owner_scope(),
        )
        self.reply(collection.model_dump(mode="json"))


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
        await self.workflow_or_404(workflow_id)  # another owner's workflow too
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
    """``GET /vimax/ws/stats``: the WebSocket hub's figures (for admins only when
    ``owner_only`` is on: its rooms name every watched workflow)."""

    @api
    async def get(self) -> None:
        self.require_admin("the hub's connections and rooms")
        service = await self.service()
        self.reply(service.hub.stats())


class HubClientHandler(VimaxHandler):
    """``GET /vimax/ws/client/{client_id}``: one WebSocket connection's metadata (for
    admins only when ``owner_only`` is on)."""

    @api
    async def get(self, client_id: str) -> None:
        self.require_admin("the hub's connections")
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
    (r"/vimax/api/gc", CollectHandler),
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

# The A2A routes first: /vimax/api/agents/{name}/card before /vimax/api/agents/{name}.
default_handlers: list[tuple[str, type]] = a2a_handlers + rest_handlers + websocket_handlers
