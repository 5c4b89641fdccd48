"""The base of the REST handlers: authentication, authorization, ownership, the running
service, JSON errors.

Who a request is and what it may do is decided here for the WebSocket endpoints too
(:func:`owner_name`, :func:`owner_scope_of`, :func:`is_authorized`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web

from ..coordinator import Coordinator, WorkflowNotFound
from ..protocol import WorkflowRecord
from ..protocol.limits import INT64_MAX, TooDeep, load_json
from ..store import Store
from .access import Ownership, refusal, visible

if TYPE_CHECKING:
    from .app import VimaxService

F = TypeVar("F", bound=Callable[..., Awaitable[None]])

#: The authorizer's resource for everything vimax-nb serves.
RESOURCE = "vimax"
#: The action asked of the authorizer per HTTP method; any other method is a write.
HTTP_ACTIONS = {"GET": "read", "HEAD": "read"}
# A query integer: digits (at most 19, as many as a signed 64-bit integer has) and a sign.
_QUERY_INTEGER = re.compile(r"-?[0-9]{1,19}")


def api(method: F) -> F:
    """Authenticate (403 without a user), then ask the authorizer for ``read`` (GET) or
    ``write`` (POST) on ``vimax`` (403 when it refuses), then run ``method``: a refused
    request does no work."""

    @functools.wraps(method)
    async def authorized_method(self: VimaxHandler, *args: Any, **kwargs: Any) -> None:
        await self.authorize(HTTP_ACTIONS.get(self.request.method or "", "write"))
        await method(self, *args, **kwargs)

    return cast(F, web.authenticated(authorized_method))


def _ownership(handler: JupyterHandler) -> Ownership:
    ownership: Ownership = handler.settings["vimax"].ownership
    return ownership


def owner_name(handler: JupyterHandler) -> str | None:
    """The owner name of the request's authenticated user (None without one): its
    username, or ``c.VimaxApp.server_user`` for a user Jupyter made up (see
    :mod:`vimax_nb.server.access`)."""
    return _ownership(handler).owner_of(handler.current_user)


def owner_scope_of(handler: JupyterHandler) -> str | None:
    """Whose workflows the request's user sees and controls: None for all of them
    (``c.VimaxApp.owner_only`` off, or an admin), else its own owner name."""
    return _ownership(handler).scope(owner_name(handler))


async def is_authorized(handler: JupyterHandler, action: str) -> bool:
    """Whether the server's authorizer lets the request's user do ``action`` (``read``,
    ``write``) on the ``vimax`` resource; the authorizer may answer asynchronously."""
    allowed = await ensure_async(
        handler.authorizer.is_authorized(handler, handler.current_user, action, RESOURCE)
    )
    return bool(allowed)


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
    """Base of the REST handlers: the running service, the user's rights, JSON answers
    and errors."""

    auth_resource = RESOURCE

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
        """The owner name of the request's user (see :func:`owner_name`)."""
        return owner_name(self)

    def owner_scope(self) -> str | None:
        """Whose workflows this request sees and controls: None for every workflow, else
        only those whose ``owner`` is the returned name (``c.VimaxApp.owner_only``)."""
        return owner_scope_of(self)

    async def authorize(self, action: str) -> None:
        """Return if the authorizer lets the user do ``action`` on ``vimax``; else a 403."""
        if not await is_authorized(self, action):
            raise ApiError(403, refusal(self.username(), action))

    def require_admin(self, what: str) -> None:
        """A 403 unless the user sees every workflow: ``what`` names them all."""
        if self.owner_scope() is not None:
            raise ApiError(
                403,
                f"not allowed: with c.VimaxApp.owner_only on, only admins see {what} "
                "(c.VimaxApp.admin_users and server_user)",
            )

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
        """The request body as a JSON object, or a 400 that says what is wrong with it.

        The body must be UTF-8 JSON within the bounds of :mod:`vimax_nb.protocol.limits`:
        arrays and objects nested at most ``MAX_JSON_DEPTH`` (32) deep, integers in the
        signed 64-bit range, finite numbers, strings without lone UTF-16 surrogates.
        """
        try:
            text = (self.request.body or b"").decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ApiError(
                400, f"the request body is not UTF-8 text: {exc.reason} at byte {exc.start}"
            ) from None
        try:
            body, problem = load_json(text)
        except TooDeep as exc:
            raise ApiError(400, f"the request body is not usable: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        if problem is not None:
            where, what = problem
            where = where if len(where) <= 60 else where[:57] + "..."
            subject = f"field {where!r}" if where else "the request body"
            raise ApiError(400, f"the request body is not usable: {subject} {what}")
        return body

    def int_argument(self, name: str, default: int, low: int, high: int | None = None) -> int:
        """Query argument ``name`` as an integer from ``low`` to ``high`` (by default the
        largest signed 64-bit integer, which SQLite can store), or a 400 naming the
        bounds. Only ASCII digits with an optional minus sign are taken."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        top = INT64_MAX if high is None else min(high, INT64_MAX)
        value = int(raw) if _QUERY_INTEGER.fullmatch(raw) else None
        if value is None or not low <= value <= top:
            shown = raw if len(raw) <= 40 else raw[:37] + "..."
            raise ApiError(400, f"{name} must be an integer from {low} to {top} (got {shown!r})")
        return value

    async def workflow_or_404(self, workflow_id: str) -> WorkflowRecord:
        """The workflow's record, or a 404 when there is none or the user may not see it
        (the same 404: another user's workflow is not shown to exist)."""
        coordinator = await self.coordinator()
        try:
            record = await coordinator.get_workflow(workflow_id)
        except WorkflowNotFound:
            raise workflow_not_found(workflow_id) from None
        if not visible(record, self.owner_scope()):
            raise workflow_not_found(workflow_id)
        return record
