"""The SDK's agent executor: a task is a workflow already started, followed in the log.

The request handler starts the workflow before the SDK makes the task (so that a quota
or a bad parameter is a JSON-RPC error, and the task's id is the workflow's); the
executor then announces the task and turns every event the workflow stores into A2A
updates until it ends. A client that drops its stream does not stop the workflow, and
the task keeps being brought up to date.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from a2a.server.agent_execution import AgentExecutor, RequestContext, RequestContextBuilder
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.types import SendMessageRequest, Task, TaskState, TaskStatus

from ..coordinator import Coordinator, InvalidTransition, WorkflowNotFound
from ..protocol import ControlAction, WorkflowRecord, WorkflowState, workflow_room
from ..store import EventLog
from .caller import caller_of
from .follow import RoomFollower
from .updates import UpdateTracker, agent_message

#: The key of :class:`Submission` in ``ServerCallContext.state``.
SUBMISSION = "vimax.submission"


@dataclass(frozen=True, slots=True)
class Submission:
    """The workflow a SendMessage started, and the line that says what it makes."""

    record: WorkflowRecord
    plan: str


def submission_of(context: ServerCallContext | None) -> Submission | None:
    """The workflow the call started, if it started one."""
    found = context.state.get(SUBMISSION) if context is not None else None
    return found if isinstance(found, Submission) else None


class WorkflowContextBuilder(RequestContextBuilder):
    """Gives a new task the id of the workflow the call started."""

    async def build(
        self,
        context: ServerCallContext,
        params: SendMessageRequest | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
        task: Task | None = None,
    ) -> RequestContext:
        submission = submission_of(context)
        if task_id is None and submission is not None:
            task_id = submission.record.id
        return RequestContext(
            call_context=context,
            request=params,
            task_id=task_id,
            context_id=context_id,
            task=task,
        )


class WorkflowExecutor(AgentExecutor):
    """Follows the workflow a SendMessage started, as A2A updates (see the module's
    description)."""

    def __init__(self, coordinator: Coordinator, event_log: EventLog) -> None:
        self.coordinator = coordinator
        self.event_log = event_log

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Announce the task (SUBMITTED, with the plan), then send an update per stage,
        per artifact and at the end, from the workflow's events in the log."""
        submission = submission_of(context.call_context)
        task_id, context_id = context.task_id, context.context_id
        if submission is None or task_id is None or context_id is None:
            raise RuntimeError(
                "a vimax task starts only from a SendMessage that started a workflow"
            )
        origin = caller_of(context.call_context).origin
        with RoomFollower(self.event_log, workflow_room(task_id)) as follower:
            announced = Task(
                id=task_id,
                context_id=context_id,
                status=TaskStatus(
                    state=TaskState.TASK_STATE_SUBMITTED,
                    message=agent_message(f"accepted: {submission.plan}", task_id, context_id),
                ),
                history=[context.message] if context.message is not None else [],
            )
            await event_queue.enqueue_event(announced)
            tracker = UpdateTracker(task_id, context_id, origin)
            tracker.saw(TaskState.TASK_STATE_SUBMITTED, WorkflowState.pending.value, None)
            async for stored in follower.events(after=0):
                for update in tracker.feed(stored):
                    await event_queue.enqueue_event(update)
                if tracker.done:
                    return

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Cancel the workflow; its CANCELED update comes from the log, to every stream
        that follows it. (The request handler cancels without asking the SDK, so this is
        for the SDK's own paths.)"""
        if context.task_id is None:
            return
        with contextlib.suppress(InvalidTransition, WorkflowNotFound):
            await self.coordinator.control(context.task_id, ControlAction.cancel)
