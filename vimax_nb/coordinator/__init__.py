"""The A2A-style agent coordinator: agents, workflows as task graphs, scheduling."""

from .agents import Agent, AgentCard, AgentNotFound, AgentRegistry, Skill, skill
from .context import Artifact, TaskContext, TaskResult
from .coordinator import Coordinator
from .errors import (
    InvalidTransition,
    RetryableError,
    RetryPolicy,
    UnknownPipeline,
    WorkflowNotFound,
    is_retryable,
)
from .events import CoordinatorEvent, EventBus
from .executors import Executor, LocalExecutor
from .graph import Stage, Task, TaskGraph, TaskSpec, TaskState
from .pipeline import Pipeline
from .run import WorkflowRun

__all__ = [
    "Agent",
    "AgentCard",
    "AgentNotFound",
    "AgentRegistry",
    "Artifact",
    "Coordinator",
    "CoordinatorEvent",
    "EventBus",
    "Executor",
    "InvalidTransition",
    "LocalExecutor",
    "Pipeline",
    "RetryPolicy",
    "RetryableError",
    "Skill",
    "Stage",
    "Task",
    "TaskContext",
    "TaskGraph",
    "TaskResult",
    "TaskSpec",
    "TaskState",
    "UnknownPipeline",
    "WorkflowNotFound",
    "WorkflowRun",
    "is_retryable",
    "skill",
]
