"""The SDK's request handler, with vimax's ways where they are better than its default.

- **SendMessage / SendStreamingMessage** start the workflow first: a message that says
  nothing usable, bad parameters and quotas are JSON-RPC errors before any task exists,
  and the task's id is the workflow's. Then the SDK's own handler runs the task (its
  ``ActiveTask``, its stream), fed by :class:`~.executor.WorkflowExecutor`.
- **SubscribeToTask** sends the task as it is now, then every later event of the
  workflow from the durable log, until it ends. It works for any workflow that is
  running, whoever started it and however the server got there (a workflow resumed after
  a restart has no SDK task behind it), and a subscriber that reads slowly is never
  dropped: the log keeps the events.
- **CancelTask** cancels the workflow through the coordinator, as REST does; every
  stream that follows the task sees CANCELED from the log.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator

from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.request_handler import validate, validate_request_params
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import validate_history_length
from pydantic import ValidationError

from ..coordinator import (
    Coordinator,
    InvalidTransition,
    QuotaExceeded,
    UnknownPipeline,
    WorkflowNotFound,
)
from ..protocol import ControlAction, workflow_room
from ..store import Store
from .caller import caller_of
from .commission import UnusableMessage, read_commission
from .errors import refused_workflow
from .executor import SUBMISSION, Submission, WorkflowContextBuilder, WorkflowExecutor
from .follow import RoomFollower
from .tasks import WorkflowTaskStore
from .updates import FINAL_STATES, UpdateTracker, shown_position

log = logging.getLogger(__name__)


class WorkflowRequestHandler(DefaultRequestHandler):
    """A2A over the coordinator (see the module's description)."""

    def __init__(self, coordinator: Coordinator, store: Store, card: AgentCard) -> None:
        self.coordinator = coordinator
        self.store = store
        self.tasks = WorkflowTaskStore(coordinator, store)
        self._followers: set[RoomFollower] = set()
        super().__init__(
            agent_executor=WorkflowExecutor(coordinator, store.events),
            task_store=self.tasks,
            agent_card=card,
            request_context_builder=WorkflowContextBuilder(),
        )

    async def aclose(self) -> None:
        """End the subscriptions (their streams end) and the SDK's running tasks (the
        workflows go on, or are stopped by the coordinator)."""
        for follower in list(self._followers):
            follower.close()
        await super().aclose()

    # -- starting a workflow -----------------------------------------------------------

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Message | Task:
        """Start the workflow the message asks for, then answer as the SDK does: the
        task once it ends, or at once with ``configuration.returnImmediately``."""
        submission = await self._start(params, context)
        try:
            answer: Message | Task = await super().on_message_send(params, context)
        except BaseException:
            await self._abandon(submission)
            raise
        return answer

    @validate_request_params
    @validate(lambda self: self._agent_card.capabilities.streaming, "Streaming is not supported")
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        """Start the workflow the message asks for, then stream the task: SUBMITTED with
        the plan, WORKING per stage, each artifact, and how it ended."""
        submission = await self._start(params, context)
        stream = super().on_message_send_stream(params, context)
        try:
            first = await anext(stream)
        except BaseException:
            await self._abandon(submission)
            await stream.aclose()
            raise
        try:
            yield first
            async for event in stream:
                yield event
        finally:
            await stream.aclose()

    async def _start(self, params: SendMessageRequest, context: ServerCallContext) -> Submission:
        """Start the workflow the message asks for, for the caller; keep it in
        ``context`` for the executor. Raises the JSON-RPC error that says why not."""
        message = params.message
        if message.task_id:
            known = await self.tasks.get(message.task_id, context)
            if known is None:
                raise TaskNotFoundError(f"no task {message.task_id!r}")
            raise UnsupportedOperationError(
                f"task {message.task_id} is a vimax workflow: it takes no further messages; "
                "send a new message (without taskId) to commission another film"
            )
        validate_history_length(params.configuration)
        try:
            commission = read_commission(message)
        except UnusableMessage as exc:
            raise InvalidParamsError(message=str(exc)) from None
        caller = caller_of(context)
        try:
            record = await self.coordinator.submit(
                commission.kind,
                commission.params,
                owner=caller.owner,
                priority=commission.priority,
            )
        except UnknownPipeline as exc:
            raise InvalidParamsError(message=str(exc)) from None
        except QuotaExceeded as exc:
            raise refused_workflow(exc) from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                for e in exc.errors()
            )
            raise InvalidParamsError(
                message=f"invalid parameters for {commission.kind}: {problems}"
            ) from None
        except ValueError as exc:
            raise InvalidParamsError(message=f"invalid parameters: {exc}") from None
        submission = Submission(record, commission.plan)
        self.tasks.claim(record.id)
        context.state[SUBMISSION] = submission
        return submission

    async def _abandon(self, submission: Submission) -> None:
        """The SDK did not make the task of a workflow started for it: cancel the
        workflow, so that nothing runs that nobody asked for."""
        workflow_id = submission.record.id
        if not self.tasks.claimed(workflow_id):
            return  # the task exists: the workflow goes on
        self.tasks.release(workflow_id)
        log.warning("A2A task %s was not created: canceling its workflow", workflow_id)
        with contextlib.suppress(InvalidTransition, WorkflowNotFound):
            await self.coordinator.control(workflow_id, ControlAction.cancel)

    # -- following and canceling -------------------------------------------------------

    async def _known_task(self, task_id: str, context: ServerCallContext) -> Task:
        """The task ``task_id`` as the caller may see it; TaskNotFound (-32001) otherwise."""
        task = await self.tasks.get(task_id, context)
        if task is None:
            raise TaskNotFoundError(f"no task {task_id!r}")
        return task

    @validate_request_params
    @validate(lambda self: self._agent_card.capabilities.streaming, "Streaming is not supported")
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        """The task now, then every later update from the workflow's events in the log,
        to the end; UnsupportedOperation (-32004) for a task that has ended."""
        caller = caller_of(context)
        with RoomFollower(self.store.events, workflow_room(params.id)) as follower:
            self._followers.add(follower)
            task = await self._known_task(params.id, context)
            if task.status.state in FINAL_STATES:
                raise UnsupportedOperationError(
                    f"{_ended(task)}; GetTask gives its final state and artifacts"
                )
            yield task
            tracker = UpdateTracker(task.id, task.context_id, caller.origin)
            workflow_state, stage = shown_position(task)
            tracker.saw(task.status.state, workflow_state, stage, task.artifacts)
            try:
                async for stored in follower.events(after=follower.start):
                    for update in tracker.feed(stored):
                        yield update
                    if tracker.done:
                        return
            finally:
                self._followers.discard(follower)

    @validate_request_params
    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        """Cancel the task's workflow; the task, CANCELED. TaskNotCancelable (-32002) for
        one that has ended."""
        task = await self._known_task(params.id, context)
        if task.status.state in FINAL_STATES:
            raise TaskNotCancelableError(
                f"{_ended(task)}; only a task that is submitted or working can be canceled"
            )
        try:
            await self.coordinator.control(params.id, ControlAction.cancel)
        except InvalidTransition as exc:
            raise TaskNotCancelableError(str(exc)) from None
        except WorkflowNotFound:
            raise TaskNotFoundError(f"no task {params.id!r}") from None
        return await self.tasks.get(params.id, context)


def _ended(task: Task) -> str:
    """That ``task`` has ended, and how."""
    return f"task {task.id} has ended ({task.status.message.parts[0].text})"
