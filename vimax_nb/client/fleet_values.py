"""What a :class:`~vimax_nb.client.fleet.Fleet` holds: immutable values of the agents and
the coordinator, read leniently from events, snapshots and REST records."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["AGENT_STATUSES", "AgentInfo", "CoordinatorMetrics", "count_statuses", "summary"]

AGENT_STATUSES = ("idle", "busy", "error", "offline")


@dataclass(frozen=True)
class AgentInfo:
    """One agent as last reported: its record and its metrics, flattened."""

    name: str
    status: str = "offline"
    capabilities: tuple[str, ...] = ()
    description: str = ""
    concurrency: int = 1
    tasks_completed: int = 0
    tasks_failed: int = 0
    error_rate: float = 0.0
    avg_execution_ms: float = 0.0
    current_task: str | None = None
    last_heartbeat: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any], previous: AgentInfo | None = None) -> AgentInfo:
        """An agent from an ``agent_status`` event or an agent record (REST, snapshot);
        fields that are missing or of the wrong type keep ``previous``'s values."""
        if previous is None:
            values: dict[str, Any] = {"name": str(data.get("name", data.get("agent_name")) or "")}
        else:
            values = dict(vars(previous))
        metrics = data.get("metrics")
        for source in (data, metrics if isinstance(metrics, dict) else {}):
            for key, value in source.items():
                coerce = _COERCE.get(key)
                if coerce is not None:
                    value = coerce(value)
                    if value is not _BAD:
                        values[key] = value
        return cls(**values)


@dataclass(frozen=True)
class CoordinatorMetrics:
    """The coordinator's metrics, as its ``coordinator_metrics`` events report them."""

    total_workflows: int = 0
    active_workflows: int = 0
    queue_size: int = 0
    registered_agents: int = 0
    healthy_agents: int = 0
    tasks_per_second: float = 0.0
    dead_letters: int = 0
    connections: int = 0

    @classmethod
    def parse(
        cls, data: dict[str, Any], previous: CoordinatorMetrics | None = None
    ) -> CoordinatorMetrics:
        """Metrics from an event, a snapshot or REST; bad fields keep ``previous``'s."""
        values = dict(vars(previous or cls()))
        for key, known in values.items():
            value = _NUMBERS[type(known)](data.get(key))
            if value is not _BAD:
                values[key] = value
        return cls(**values)


def count_statuses(agents: Iterable[AgentInfo]) -> dict[str, int]:
    """``{"all": n, "idle": ..., "busy": ..., "error": ..., "offline": ...}``; another
    status counts in ``all`` and under its own name."""
    counts = dict.fromkeys(("all", *AGENT_STATUSES), 0)
    for agent in agents:
        counts["all"] += 1
        counts[agent.status] = counts.get(agent.status, 0) + 1
    return counts


def summary(agents: Iterable[AgentInfo]) -> str:
    """``"8 agents: 6 idle, 2 busy"`` (statuses with none are left out)."""
    counts = count_statuses(agents)
    total = counts.pop("all")
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    head = f"{total} agent{'s' if total != 1 else ''}"
    return f"{head}: {', '.join(parts)}" if parts else head


_BAD = object()


def _number(kind: type[int] | type[float]) -> Callable[[Any], Any]:
    return lambda v: kind(v) if isinstance(v, int | float) and not isinstance(v, bool) else _BAD


_NUMBERS = {int: _number(int), float: _number(float)}
_TEXT = lambda v: v if isinstance(v, str) else _BAD  # noqa: E731
_TEXT_OR_NONE = lambda v: v if v is None or isinstance(v, str) else _BAD  # noqa: E731
# How each field of AgentInfo (but its name) is read from events and records.
_COERCE: dict[str, Callable[[Any], Any]] = {
    "status": _TEXT,
    "description": _TEXT,
    "capabilities": lambda v: tuple(map(str, v)) if isinstance(v, list | tuple) else _BAD,
    "current_task": _TEXT_OR_NONE,
    "last_heartbeat": _TEXT_OR_NONE,
    **dict.fromkeys(("concurrency", "tasks_completed", "tasks_failed"), _NUMBERS[int]),
    **dict.fromkeys(("error_rate", "avg_execution_ms"), _NUMBERS[float]),
}
