"""The base of the REST handlers: authentication, the running service, JSON errors."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..coordinator import Coordinator, WorkflowNotFound
from ..protocol import WorkflowRecord
from ..store import Store

if TYPE_CHECKING:
    from .app import VimaxService

F = TypeVar("F", bound=Callable[..., Awaitable[None]])


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
