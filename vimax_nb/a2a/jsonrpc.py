"""A2A's JSON-RPC binding without a web framework: a request body in, a JSON-RPC answer
or a stream of them out.

The SDK's own dispatcher is written for Starlette; this is the same protocol over any
server (vimax-nb's is Tornado), calling the SDK's request handler directly:

- A body that is not JSON is answered -32700; one that is not a JSON-RPC 2.0 request
  object (a batch, no method, a bad id, nested deeper than 32 levels, numbers out of
  range) -32600; an unknown method -32601; parameters the method's request message
  cannot hold -32602. Every answer is an object the client can read; nothing a client
  sends makes an exception escape.
- A2A 1.0's method names (``SendMessage``, ``SendStreamingMessage``, ``GetTask``,
  ``ListTasks``, ``CancelTask``, ``SubscribeToTask``, the push-notification ones, which
  answer that push is not supported, and ``GetExtendedAgentCard``) and 0.3's
  (``message/send``, ``message/stream``, ``tasks/get``, ``tasks/cancel``,
  ``tasks/resubscribe``, ...) are both served, whatever ``A2A-Version`` says: the name
  tells the version.
- Each method is allowed or refused (:data:`~.errors.NOT_ALLOWED`) by the caller's
  permission for it: ``write`` to start or cancel, ``read`` for the rest.
- A streaming method's first event is awaited before answering, so an error that stops
  it at once (unknown task, a quota) is a plain JSON-RPC answer; after that, events
  stream, and an error ends the stream as an ``error`` event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from a2a.compat.v0_3 import types as t03
from a2a.compat.v0_3.request_handler import RequestHandler03
from a2a.server.context import ServerCallContext
from a2a.server.jsonrpc_models import InternalError as RpcInternalError
from a2a.server.jsonrpc_models import InvalidRequestError as RpcInvalidRequest
from a2a.server.jsonrpc_models import JSONParseError, JSONRPCError
from a2a.server.jsonrpc_models import MethodNotFoundError as RpcMethodNotFound
from a2a.server.request_handlers import RequestHandler, build_error_response
from a2a.types import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    SendMessageRequest,
    SendMessageResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import (
    JSON_RPC_ERROR_CODE_MAP,
    A2AError,
    InvalidParamsError,
    TaskNotFoundError,
)
from a2a.utils.proto_utils import to_stream_response
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel

from ..protocol.limits import TooDeep, load_json
from .errors import VimaxRpcError, not_allowed

log = logging.getLogger(__name__)

#: The largest request body read, in bytes: a film's script fits many times over.
MAX_BODY_BYTES = 4 * 1024 * 1024

#: Each A2A 1.0 method's request message.
METHODS: dict[str, type[ProtoMessage]] = {
    "SendMessage": SendMessageRequest,
    "SendStreamingMessage": SendMessageRequest,
    "GetTask": GetTaskRequest,
    "ListTasks": ListTasksRequest,
    "CancelTask": CancelTaskRequest,
    "SubscribeToTask": SubscribeToTaskRequest,
    "CreateTaskPushNotificationConfig": TaskPushNotificationConfig,
    "GetTaskPushNotificationConfig": GetTaskPushNotificationConfigRequest,
    "ListTaskPushNotificationConfigs": ListTaskPushNotificationConfigsRequest,
    "DeleteTaskPushNotificationConfig": DeleteTaskPushNotificationConfigRequest,
    "GetExtendedAgentCard": GetExtendedAgentCardRequest,
}
#: Each A2A 0.3 method's request model (the whole JSON-RPC request).
METHODS_03: dict[str, type[BaseModel]] = {
    "message/send": t03.SendMessageRequest,
    "message/stream": t03.SendStreamingMessageRequest,
    "tasks/get": t03.GetTaskRequest,
    "tasks/cancel": t03.CancelTaskRequest,
    "tasks/resubscribe": t03.TaskResubscriptionRequest,
}
#: The methods that change something: they need ``write``; the others ``read``.
WRITE_METHODS = frozenset(
    {
        "SendMessage",
        "SendStreamingMessage",
        "CancelTask",
        "CreateTaskPushNotificationConfig",
        "DeleteTaskPushNotificationConfig",
        "message/send",
        "message/stream",
        "tasks/cancel",
    }
)
STREAMING_METHODS = frozenset(
    {"SendStreamingMessage", "SubscribeToTask", "message/stream", "tasks/resubscribe"}
)
# The codes an A2A 0.3 client knows; others are sent as -32603.
_CODES_03 = {-32700, -32600, -32601, -32602, -32603, *range(-32007, -32000)}

#: Asks whether the caller may do an action (``read``, ``write``): None if so, else
#: the sentence that says why not.
Authorize = Callable[[str], Awaitable[str | None]]
Answer = dict[str, Any]


@dataclass(slots=True)
class Stream:
    """A streaming answer: its first JSON-RPC message (already made) and the rest."""

    first: Answer
    rest: AsyncGenerator[Answer, None]


def error_answer(request_id: str | int | None, error: BaseException | JSONRPCError) -> Answer:
    """The JSON-RPC error answer of ``error`` (an internal error for an exception that
    is not a protocol error; the server log has it)."""
    if isinstance(error, VimaxRpcError):
        return build_error_response(request_id, error.to_jsonrpc())
    if isinstance(error, A2AError | JSONRPCError):
        return build_error_response(request_id, error)
    log.error("A2A call %s failed", request_id, exc_info=error)
    internal = RpcInternalError(
        message=f"internal error in vimax-nb ({type(error).__name__}); "
        "the Jupyter server log has the details"
    )
    return build_error_response(request_id, internal)


def error_answer_03(request_id: str | int | None, error: BaseException | JSONRPCError) -> Answer:
    """:func:`error_answer` for an A2A 0.3 client: only the codes 0.3 knows."""
    answer = error_answer(request_id, error)
    code = answer["error"]["code"]
    if isinstance(error, A2AError):
        code = JSON_RPC_ERROR_CODE_MAP.get(type(error), -32603)
    answer["error"] = {
        "code": code if code in _CODES_03 else -32603,
        "message": answer["error"]["message"],
    }
    return answer


def _ok(request_id: str | int | None, result: Any) -> Answer:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


class JsonRpc:
    """Answers A2A JSON-RPC request bodies with a :class:`RequestHandler` (see the
    module's description)."""

    def __init__(self, handler: RequestHandler) -> None:
        self.handler = handler
        self.handler_03 = RequestHandler03(handler)

    async def answer(
        self, body: bytes, context: ServerCallContext, authorize: Authorize
    ) -> Answer | Stream:
        """The answer to a request ``body`` made in ``context``: a JSON-RPC message, or
        a :class:`Stream` of them for a streaming method that started."""
        request, request_id, refusal = _read_request(body)
        if refusal is not None:
            return refusal
        assert request is not None
        method = request["method"]
        version_10 = method in METHODS
        if not version_10 and method not in METHODS_03:
            return error_answer(
                request_id,
                RpcMethodNotFound(
                    message=f"method {method[:60]!r} not found; A2A 1.0's are " + ", ".join(METHODS)
                ),
            )
        refused = await authorize("write" if method in WRITE_METHODS else "read")
        if refused is not None:
            failed = not_allowed(refused)
            return error_answer(request_id, failed) if version_10 else _err03(request_id, failed)
        context.state["method"] = method
        context.state["request_id"] = request_id
        if version_10:
            return await self._answer_10(request_id, method, request.get("params", {}), context)
        return await self._answer_03(request_id, method, request, context)

    async def _answer_10(
        self, request_id: str | int | None, method: str, params: Any, context: ServerCallContext
    ) -> Answer | Stream:
        try:
            if not isinstance(params, dict):
                raise ValueError("params must be an object")
            request: Any = ParseDict(params, METHODS[method](), ignore_unknown_fields=True)
        except Exception as exc:
            return error_answer(
                request_id,
                InvalidParamsError(
                    message=f"invalid params for {method}: {str(exc)[:300]}",
                    data={"parseError": str(exc)[:300]},
                ),
            )
        context.tenant = getattr(request, "tenant", "")
        handler = self.handler
        try:
            if method == "SendStreamingMessage":
                events = handler.on_message_send_stream(request, context)
                return await _stream(request_id, events, _event_answer(request_id), error_answer)
            if method == "SubscribeToTask":
                events = handler.on_subscribe_to_task(request, context)
                return await _stream(request_id, events, _event_answer(request_id), error_answer)
            return _ok(request_id, await self._result(method, request, context))
        except Exception as exc:
            return error_answer(request_id, exc)

    async def _result(self, method: str, request: Any, context: ServerCallContext) -> Any:
        handler = self.handler
        if method == "SendMessage":
            sent = await handler.on_message_send(request, context)
            response = (
                SendMessageResponse(task=sent)
                if isinstance(sent, Task)
                else SendMessageResponse(message=sent)
            )
            return MessageToDict(response)
        if method == "GetTask":
            return _task_or_not_found(await handler.on_get_task(request, context))
        if method == "CancelTask":
            return _task_or_not_found(await handler.on_cancel_task(request, context))
        if method == "ListTasks":
            page = await handler.on_list_tasks(request, context)
            listed = MessageToDict(page, always_print_fields_with_no_presence=True)
            if not request.include_artifacts:
                for task in listed["tasks"]:
                    task.pop("artifacts", None)
            return listed
        if method == "CreateTaskPushNotificationConfig":
            made = await handler.on_create_task_push_notification_config(request, context)
            return MessageToDict(made)
        if method == "GetTaskPushNotificationConfig":
            found = await handler.on_get_task_push_notification_config(request, context)
            return MessageToDict(found)
        if method == "ListTaskPushNotificationConfigs":
            configs = await handler.on_list_task_push_notification_configs(request, context)
            return MessageToDict(configs)
        if method == "DeleteTaskPushNotificationConfig":
            await handler.on_delete_task_push_notification_config(request, context)
            return None
        card = await handler.on_get_extended_agent_card(request, context)
        return MessageToDict(card)

    async def _answer_03(
        self,
        request_id: str | int | None,
        method: str,
        body: dict[str, Any],
        context: ServerCallContext,
    ) -> Answer | Stream:
        try:
            request: Any = METHODS_03[method].model_validate(body)
        except Exception as exc:
            return _err03(request_id, InvalidParamsError(message=str(exc)[:500]))
        handler = self.handler_03
        try:
            if method == "message/send":
                result: BaseModel = t03.SendMessageSuccessResponse(
                    id=request_id, result=await handler.on_message_send(request, context)
                )
            elif method == "tasks/get":
                result = t03.GetTaskSuccessResponse(
                    id=request_id, result=await handler.on_get_task(request, context)
                )
            elif method == "tasks/cancel":
                result = t03.CancelTaskSuccessResponse(
                    id=request_id, result=await handler.on_cancel_task(request, context)
                )
            else:
                events = (
                    handler.on_message_send_stream(request, context)
                    if method == "message/stream"
                    else handler.on_subscribe_to_task(request, context)
                )
                return await _stream(request_id, events, _dump_03, _err03)
            return _dump_03(result)
        except Exception as exc:
            return _err03(request_id, exc)


def _err03(request_id: str | int | None, error: BaseException | JSONRPCError) -> Answer:
    return error_answer_03(request_id, error)


def _dump_03(model: Any) -> Answer:
    dumped: Answer = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def _event_answer(request_id: str | int | None) -> Callable[[Any], Answer]:
    def answer(event: Any) -> Answer:
        return _ok(request_id, MessageToDict(to_stream_response(event)))

    return answer


def _task_or_not_found(task: Task | None) -> Answer:
    if task is None:
        raise TaskNotFoundError
    found: Answer = MessageToDict(task)
    return found


async def _stream(
    request_id: str | int | None,
    events: AsyncIterable[Any],
    to_answer: Callable[[Any], Answer],
    to_error: Callable[[str | int | None, BaseException | JSONRPCError], Answer],
) -> Answer | Stream:
    """The first event, awaited (an error then is a plain answer), and the rest."""
    events = aiter(events)
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except Exception as exc:
        await _close(events)
        return to_error(request_id, exc)

    async def rest() -> AsyncGenerator[Answer, None]:
        try:
            async for event in events:
                yield to_answer(event)
        except Exception as exc:
            yield to_error(request_id, exc)
        finally:
            await _close(events)

    if first is None:
        await _close(events)
        return to_error(request_id, RpcInternalError(message="the stream ended at once"))
    return Stream(to_answer(first), rest())


async def _close(events: AsyncIterable[Any]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


def _refused(
    request_id: str | int | None, error: JSONRPCError | A2AError
) -> tuple[None, None, Answer]:
    """:func:`_read_request`'s answer to a body it refuses."""
    return None, None, error_answer(request_id, error)


def _read_request(
    body: bytes,
) -> tuple[dict[str, Any] | None, str | int | None, Answer | None]:
    """The request object in ``body`` and its id, or the error answer that refuses it."""
    if len(body) > MAX_BODY_BYTES:
        return _refused(
            None,
            RpcInvalidRequest(
                message=f"the request body is {len(body)} bytes; at most {MAX_BODY_BYTES} are read"
            ),
        )
    try:
        text = body.decode("utf-8-sig")
        data, problem = load_json(text)
    except UnicodeDecodeError as exc:
        return _refused(
            None,
            JSONParseError(message=f"the body is not UTF-8: {exc.reason} at byte {exc.start}"),
        )
    except TooDeep as exc:
        return _refused(None, RpcInvalidRequest(message=f"unusable request: {exc}"))
    except (ValueError, RecursionError) as exc:
        return _refused(None, JSONParseError(message=f"not JSON: {exc}"))
    if not isinstance(data, dict):
        what = "batches are not supported" if isinstance(data, list) else "it must be an object"
        return _refused(None, RpcInvalidRequest(message=f"invalid JSON-RPC request: {what}"))
    request_id = data.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        return _refused(
            None,
            RpcInvalidRequest(
                message="invalid JSON-RPC request: id must be a string, an integer or null"
            ),
        )
    if problem is not None:
        where, what = problem
        where = where if len(where) <= 60 else where[:57] + "..."
        subject = f"field {where!r}" if where else "the request"
        error: JSONRPCError | A2AError = (
            InvalidParamsError(message=f"{subject} {what}")
            if where.startswith("params")
            else RpcInvalidRequest(message=f"invalid JSON-RPC request: {subject} {what}")
        )
        safe_id = request_id if not where.startswith("id") else None
        return _refused(safe_id, error)
    method = data.get("method")
    if data.get("jsonrpc") != "2.0":
        return _refused(
            request_id,
            RpcInvalidRequest(message="invalid JSON-RPC request: 'jsonrpc' must be '2.0'"),
        )
    if not isinstance(method, str) or not method:
        return _refused(
            request_id,
            RpcInvalidRequest(message="invalid JSON-RPC request: 'method' must be a method name"),
        )
    return data, request_id, None


def dumps(answer: Answer) -> str:
    """A JSON-RPC answer as text (UTF-8 characters kept as they are)."""
    return json.dumps(answer, ensure_ascii=False)
