"""The A2A-style agent coordinator: agents, workflows as task graphs, scheduling."""

from .agents import Agent, AgentCard, AgentNotFound, AgentRegistry, Skill, skill
from .context import Artifact, TaskContext, TaskResult
from .coordinator import Coordinator, WorkflowPage
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
from .quotas import DiskQuotaExceeded, QuotaExceeded, Quotas, TooManyWorkflows, WorkflowTooLarge
from .run import WorkflowRun

__all__ = [
    "Agent",
    "AgentCard",
    "AgentNotFound",
    "AgentRegistry",
    "Artifact",
    "Coordinator",
    "CoordinatorEvent",
    "DiskQuotaExceeded",
    "EventBus",
    "Executor",
    "InvalidTransition",
    "LocalExecutor",
    "Pipeline",
    "QuotaExceeded",
    "Quotas",
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
    "TooManyWorkflows",
    "UnknownPipeline",
    "WorkflowNotFound",
    "WorkflowPage",
    "WorkflowRun",
    "WorkflowTooLarge",
    "is_retryable",
    "skill",
]
