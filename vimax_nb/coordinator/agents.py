"""Agents: named workers with skills, their live status and metrics, and the registry."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from ..protocol import AgentMetrics, AgentRecord, AgentState, ProviderStatus
from ..shared import format_timestamp

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Skill:
    """One capability of an agent, as A2A names it."""

    id: str
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()


class AgentSkillCard(BaseModel):
    """A skill in an A2A agent card."""

    id: str
    name: str
    description: str
    tags: list[str] = Field(default_factory=list)


class AgentCard(BaseModel):
    """The A2A-shaped description of an agent: who it is and what it can do."""

    name: str
    description: str
    version: str
    skills: list[AgentSkillCard]


def skill(
    id: str | None = None, *, name: str = "", description: str = "", tags: tuple[str, ...] = ()
) -> Callable[[F], F]:
    """Mark a method of an :class:`Agent` subclass as the handler of a skill.

    The skill id defaults to the method's name; the description to its docstring.
    """

    def mark(fn: F) -> F:
        doc = inspect.getdoc(fn) or ""
        fn.__vimax_skill__ = Skill(  # type: ignore[attr-defined]
            id or fn.__name__,
            name or (id or fn.__name__).replace("_", " "),
            description or doc.split("\n\n")[0],
            tags,
        )
        return fn

    return mark


@dataclass(slots=True)
class _Counters:
    tasks_completed: int = 0
    tasks_failed: int = 0
    total_ms: float = 0.0
    last_heartbeat: float = field(default_factory=time.time)


class Agent:
    """A worker that performs the tasks of its skills.

    Subclasses declare handlers with :func:`skill`; :meth:`add_skill` adds one to
    an instance. A handler takes a :class:`~vimax_nb.coordinator.TaskContext` and
    returns the task's result; a plain function runs in the executor's pool, a
    coroutine function on the event loop. At most ``concurrency`` tasks run on the
    agent at once.
    """

    description: str = ""
    version: str = "1.0"

    def __init__(
        self, name: str | None = None, *, description: str | None = None, concurrency: int = 1
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"agent concurrency must be at least 1 (got {concurrency})")
        self.name = name or type(self).__name__
        if description is not None:
            self.description = description
        self.concurrency = concurrency
        self.skills: dict[str, Skill] = {}
        self.handlers: dict[str, Callable[..., Any]] = {}
        for klass in reversed(type(self).__mro__):  # base classes first, in definition order
            for attr, value in vars(klass).items():
                found = getattr(value, "__vimax_skill__", None)
                if isinstance(found, Skill):
                    self.skills[found.id] = found
                    self.handlers[found.id] = getattr(self, attr)
        self.running: dict[str, float] = {}
        self.activities: dict[str, str] = {}
        self.assigned = 0
        self.offline = False
        self.failed_last = False
        self._counters = _Counters()

    def add_skill(
        self, id: str, handler: Callable[..., Any], *, description: str = "", name: str = ""
    ) -> Agent:
        """Give this agent the skill ``id``, performed by ``handler``; return the agent."""
        self.skills[id] = Skill(id, name or id.replace("_", " "), description)
        self.handlers[id] = handler
        return self

    @property
    def capabilities(self) -> list[str]:
        """The ids of this agent's skills."""
        return list(self.skills)

    # -- status -------------------------------------------------------------------

    @property
    def status(self) -> AgentState:
        """offline when taken out of service, busy while running a task, error after a
        failed task until one succeeds, else idle."""
        if self.offline:
            return AgentState.offline
        if self.running:
            return AgentState.busy
        return AgentState.error if self.failed_last else AgentState.idle

    @property
    def healthy(self) -> bool:
        """Whether the agent takes work and its last task did not fail."""
        return not self.offline and not self.failed_last

    @property
    def load(self) -> float:
        """Running tasks as a share of the agent's concurrency."""
        return len(self.running) / self.concurrency

    def has_capacity(self) -> bool:
        """Whether one more task may start on this agent now."""
        return not self.offline and len(self.running) < self.concurrency

    def task_started(self, label: str) -> None:
        """Count a task as running on this agent."""
        now = time.time()
        self.running[label] = now
        self.assigned += 1
        self._counters.last_heartbeat = now

    def task_finished(self, label: str, ok: bool, counted: bool = True) -> None:
        """Count a running task as finished (``ok``) or failed; a canceled task
        (not ``counted``) only frees its slot."""
        now = time.time()
        started = self.running.pop(label, now)
        self.activities.pop(label, None)
        counters = self._counters
        counters.last_heartbeat = now
        if not counted:
            return
        if ok:
            counters.tasks_completed += 1
            counters.total_ms += (now - started) * 1000.0
        else:
            counters.tasks_failed += 1
        self.failed_last = not ok

    def task_activity(self, label: str, activity: str) -> None:
        """Record what the running task ``label`` waits on (``""``: nothing)."""
        if label not in self.running:
            return
        if activity:
            self.activities[label] = activity
        else:
            self.activities.pop(label, None)

    def provider_statuses(self) -> list[ProviderStatus]:
        """The providers this agent's skills use, with their readiness; none by default."""
        return []

    def heartbeat(self) -> None:
        """Record that the agent is alive."""
        self._counters.last_heartbeat = time.time()

    def metrics(self) -> AgentMetrics:
        """The agent's counters as the protocol reports them."""
        c = self._counters
        finished = c.tasks_completed + c.tasks_failed
        return AgentMetrics(
            tasks_completed=c.tasks_completed,
            tasks_failed=c.tasks_failed,
            error_rate=c.tasks_failed / finished if finished else 0.0,
            avg_execution_ms=c.total_ms / c.tasks_completed if c.tasks_completed else 0.0,
            current_task=next(iter(self.running), None),
            last_heartbeat=format_timestamp(c.last_heartbeat),
            activity=next(iter(self.activities.values()), None),
        )

    def record(self) -> AgentRecord:
        """The agent as ``GET /vimax/api/agents/{name}`` returns it."""
        return AgentRecord(
            name=self.name,
            description=self.description,
            status=self.status,
            capabilities=self.capabilities,
            concurrency=self.concurrency,
            metrics=self.metrics(),
            providers=self.provider_statuses(),
        )

    def card(self) -> AgentCard:
        """The agent's A2A-shaped card."""
        return AgentCard(
            name=self.name,
            description=self.description,
            version=self.version,
            skills=[
                AgentSkillCard(id=s.id, name=s.name, description=s.description, tags=list(s.tags))
                for s in self.skills.values()
            ],
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self.status.value} skills={self.capabilities}>"
        )


class AgentNotFound(LookupError):
    """No agent of that name is registered."""


class AgentRegistry:
    """The agents a coordinator can give work to, by name and by skill."""

    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._by_skill: dict[str, list[Agent]] = {}

    def register(self, agent: Agent) -> Agent:
        """Add ``agent``; its name must be new."""
        if agent.name in self._agents:
            raise ValueError(
                f"an agent named {agent.name!r} is already registered; agent names are unique"
            )
        if not agent.skills:
            raise ValueError(f"agent {agent.name!r} has no skills: it could never be given work")
        self._agents[agent.name] = agent
        for skill_id in agent.skills:
            self._by_skill.setdefault(skill_id, []).append(agent)
        return agent

    def unregister(self, name: str) -> Agent:
        """Remove the agent ``name`` and return it."""
        agent = self.get(name)
        del self._agents[name]
        for skill_id in agent.skills:
            self._by_skill[skill_id].remove(agent)
            if not self._by_skill[skill_id]:
                del self._by_skill[skill_id]
        return agent

    def get(self, name: str) -> Agent:
        """The agent ``name``; raises :class:`AgentNotFound`."""
        try:
            return self._agents[name]
        except KeyError:
            known = ", ".join(sorted(self._agents)) or "none"
            raise AgentNotFound(f"no agent named {name!r} (registered: {known})") from None

    def capable(self, skill_id: str) -> list[Agent]:
        """The agents with skill ``skill_id``, in registration order."""
        return self._by_skill.get(skill_id, [])

    def least_loaded(self, skill_id: str) -> Agent | None:
        """The capable agent with room for a task and the lowest load, or None."""
        best: Agent | None = None
        for agent in self._by_skill.get(skill_id, ()):
            if agent.has_capacity() and (
                best is None or (agent.load, agent.assigned) < (best.load, best.assigned)
            ):
                best = agent
        return best

    @property
    def skills(self) -> set[str]:
        """Every skill some registered agent has."""
        return set(self._by_skill)

    def __iter__(self) -> Iterator[Agent]:
        return iter(list(self._agents.values()))

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents
