"""The REST surface of vimax-nb: thin Tornado handlers over the coordinator and the store.

Every route goes through Jupyter's identity provider and authorizer
(``auth_resource = "vimax"``). Errors are JSON ``{"message": ...}`` with a message a
person can act on, plus ``errors`` (bad workflow parameters) or ``state`` (a control
action the workflow's state does not allow). The URLs are a contract; see DESIGN.md.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import re
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from pydantic import ValidationError
from tornado import web
from tornado.iostream import StreamClosedError

from ..coordinator import (
    AgentNotFound,
    Coordinator,
    InvalidTransition,
    UnknownPipeline,
    WorkflowNotFound,
)
from ..protocol import ControlAction, WorkflowRecord, workflow_room
from ..store import Store
from .websocket import MultiplexWebSocket, RoomWebSocket

if TYPE_CHECKING:
    from .app import VimaxService

F = TypeVar("F", bound=Callable[..., Awaitable[None]])

EVENTS_LIMIT_DEFAULT = 1000
EVENTS_LIMIT_MAX = 10_000
CHUNK_SIZE = 256 * 1024

# Content types served for artifacts. Anything else is sent as an opaque download:
# never as HTML, SVG or JavaScript, which a browser would run on the server's origin.
CONTENT_TYPES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".srt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
}
OPAQUE = "application/octet-stream"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def api(method: F) -> F:
    """Authenticate, authorize (resource ``vimax``), then run ``method``."""
    return cast(F, web.authenticated(authorized(method)))


class ApiError(web.HTTPError):
    """An HTTP error whose JSON body carries ``fields`` next to ``message``."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(status_code, "%s", message)
        self.message = message
        self.headers = headers or {}
        self.fields = fields


def workflow_not_found(workflow_id: str) -> ApiError:
    return ApiError(
        404, f"no workflow with id {workflow_id!r}; GET /vimax/api/workflows lists them"
    )


class VimaxHandler(APIHandler):
    """Base of the REST handlers: the running service, JSON answers and errors."""

    auth_resource = "vimax"

    async def service(self) -> VimaxService:
        """The running vimax service (started on first use)."""
        service: VimaxService = self.settings["vimax"]
        try:
            await service.ensure_started()
        except Exception as exc:
            self.log.exception("vimax-nb could not start")
            raise ApiError(
                503,
                f"vimax-nb could not start ({type(exc).__name__}: {exc}); "
                "see the Jupyter server log, fix the cause and restart the server",
            ) from exc
        return service

    async def coordinator(self) -> Coordinator:
        service = await self.service()
        assert service.coordinator is not None
        return service.coordinator

    async def store(self) -> Store:
        service = await self.service()
        assert service.store is not None
        return service.store

    def username(self) -> str | None:
        user = self.current_user
        name = getattr(user, "username", None)
        return str(name) if name else (str(user) if user else None)

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            for name, value in exc.headers.items():
                self.set_header(name, value)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": exc.message, **exc.fields}))
            return
        if exc is not None and not isinstance(exc, web.HTTPError):
            # APIHandler would say "Unhandled error"; say where to look instead.
            self.set_header("Content-Type", "application/json")
            message = (
                f"internal error in vimax-nb ({type(exc).__name__}); "
                "the Jupyter server log has the details"
            )
            self.finish(json.dumps({"message": message}))
            return
        super().write_error(status_code, **kwargs)

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object, or a 400."""
        try:
            body = json.loads(self.request.body or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body

    def int_argument(self, name: str, default: int, low: int, high: int | None = None) -> int:
        """Query argument ``name`` as an integer in [low, high], or a 400."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ApiError(400, f"{name} must be an integer {bounds} (got {raw!r})")
        return value

    async def workflow_or_404(self, workflow_id: str) -> WorkflowRecord:
        coordinator = await self.coordinator()
        try:
            return await coordinator.get_workflow(workflow_id)
        except WorkflowNotFound:
            raise workflow_not_found(workflow_id) from None


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
    """``GET /vimax/api/workflows``: every workflow; ``POST``: start one."""

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
        extra = sorted(set(body) - {"kind", "params"})
        if extra:
            raise ApiError(
                400, f"unexpected field(s) {', '.join(map(repr, extra))}; send 'kind' and 'params'"
            )
        try:
            record = await coordinator.submit(kind, params, owner=self.username())
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


class ArtifactHandler(VimaxHandler):
    """``GET /vimax/api/workflows/{id}/artifacts/{path}``: a file of the workflow's folder.

    Only regular files inside ``<workdir>/<id>/`` are served, after resolving
    symlinks; big files are streamed in chunks; a single byte range is honoured.
    """

    def compute_etag(self) -> str | None:
        return None  # streamed: tornado's hash of the last chunk would be wrong

    @api
    async def get(self, workflow_id: str, path: str) -> None:
        await self.workflow_or_404(workflow_id)
        service = await self.service()
        target = self._resolve(Path(service.workdir), workflow_id, path)
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise self._missing(workflow_id, path) from None
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise self._missing(workflow_id, path)
            size = info.st_size
            start, end = self._range(size)
            content_type = CONTENT_TYPES.get(target.suffix.lower(), OPAQUE)
            if content_type == OPAQUE:
                # other media by their usual type, but never SVG (it can carry scripts)
                guessed = mimetypes.guess_type(target.name)[0] or OPAQUE
                if guessed.split("/")[0] in ("image", "video", "audio"):
                    content_type = OPAQUE if guessed == "image/svg+xml" else guessed
            if content_type == OPAQUE:
                self.set_header(
                    "Content-Disposition",
                    f"attachment; filename*=UTF-8''{quote(target.name, safe='')}",
                )
            self.set_header("Content-Type", content_type)
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Accept-Ranges", "bytes")
            self.set_header("Cache-Control", "no-cache")
            self.set_header("Content-Length", str(end - start))
            if (start, end) != (0, size):
                self.set_status(206)
                self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            file.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = await asyncio.to_thread(file.read, min(CHUNK_SIZE, remaining))
                if not chunk:  # the file shrank while being sent
                    break
                remaining -= len(chunk)
                self.write(chunk)
                try:
                    await self.flush()
                except StreamClosedError:  # the client went away
                    return
        self.finish(set_content_type=content_type)

    def _range(self, size: int) -> tuple[int, int]:
        """The [start, end) bytes to send: all of them, or the one range asked for."""
        header = self.request.headers.get("Range")
        if not header:
            return 0, size
        match = _RANGE.match(header.strip())
        if match is None:  # several ranges or another unit: send it all
            return 0, size
        first, last = match.groups()
        if first:
            start = int(first)
            end = min(int(last) + 1, size) if last else size
        elif last:
            start, end = max(size - int(last), 0), size
        else:
            return 0, size
        if start >= size or start >= end:
            raise ApiError(
                416,
                f"the range {header!r} is outside the file ({size} bytes)",
                headers={"Content-Range": f"bytes */{size}"},
            )
        return start, end

    @staticmethod
    def _missing(workflow_id: str, path: str) -> ApiError:
        return ApiError(
            404,
            f"workflow {workflow_id} has no artifact {path!r}; the workflow's artifact events "
            "give each artifact's URL",
        )

    def _resolve(self, workdir: Path, workflow_id: str, path: str) -> Path:
        """The real path of ``path`` inside the workflow's folder, or a 400/404."""
        pure = PurePosixPath(path)
        if (
            not path
            or "\x00" in path
            or "\\" in path
            or pure.is_absolute()
            or any(part in ("..", ".") for part in path.split("/"))
        ):
            raise ApiError(
                400,
                f"invalid artifact path {path!r}: use a path relative to the workflow's folder, "
                "such as final_video.mp4 or shots/0/first_frame.png",
            )
        root = workdir.resolve()
        folder = (root / workflow_id).resolve()
        if folder.parent != root:
            raise self._missing(workflow_id, path)
        try:
            target = (folder / pure).resolve(strict=True)
        except (OSError, RuntimeError):
            raise self._missing(workflow_id, path) from None
        if not target.is_relative_to(folder) or target == folder or not target.is_file():
            raise self._missing(workflow_id, path)
        return target


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


class CoordinatorHandler(VimaxHandler):
    """``GET /vimax/api/coordinator``: the coordinator's metrics now."""

    @api
    async def get(self) -> None:
        coordinator = await self.coordinator()
        metrics = coordinator.metrics()
        self.reply(metrics.model_dump(mode="json", exclude={"room", "seq", "timestamp"}))


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
