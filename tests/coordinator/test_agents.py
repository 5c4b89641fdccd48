"""Agents, their skills, status and metrics, and the registry."""

from __future__ import annotations

import pytest

from vimax_nb.coordinator import Agent, AgentNotFound, AgentRegistry, TaskContext, skill
from vimax_nb.protocol import AgentState


class Painter(Agent):
    description = "Paints frames"

    @skill(tags=("image",))
    def paint(self, ctx: TaskContext) -> None:
        """Paint one frame.

        Longer notes that stay out of the card.
        """

    @skill("sketch", name="Quick sketch", description="A rough draft")
    async def draft(self, ctx: TaskContext) -> None: ...


def test_skills_come_from_decorated_methods_and_make_an_a2a_card() -> None:
    painter = Painter("painter-1", concurrency=2)
    assert painter.capabilities == ["paint", "sketch"]
    assert painter.handlers["sketch"] == painter.draft
    card = painter.card()
    assert card.name == "painter-1"
    assert card.description == "Paints frames"
    assert [(s.id, s.name, s.description, s.tags) for s in card.skills] == [
        ("paint", "paint", "Paint one frame.", ["image"]),
        ("sketch", "Quick sketch", "A rough draft", []),
    ]
    added = Agent("helper").add_skill("caption", lambda ctx: None, description="Write captions")
    assert added.capabilities == ["caption"]


def test_status_and_metrics_follow_the_tasks() -> None:
    agent = Painter("p", concurrency=2)
    assert agent.status == AgentState.idle
    agent.task_started("w/1")
    agent.task_started("w/2")
    assert agent.status == AgentState.busy
    assert not agent.has_capacity()
    assert agent.metrics().current_task == "w/1"
    agent.task_finished("w/1", ok=True)
    agent.task_finished("w/2", ok=False)
    assert agent.status == AgentState.error
    assert not agent.healthy
    metrics = agent.metrics()
    assert (metrics.tasks_completed, metrics.tasks_failed) == (1, 1)
    assert metrics.error_rate == 0.5
    assert metrics.avg_execution_ms >= 0.0
    assert metrics.last_heartbeat is not None
    assert metrics.last_heartbeat.endswith("Z")
    agent.task_started("w/3")
    agent.task_finished("w/3", ok=False, counted=False)  # canceled: neither done nor failed
    assert agent.metrics().tasks_failed == 1
    agent.task_started("w/4")
    agent.task_finished("w/4", ok=True)
    assert agent.status == AgentState.idle
    agent.offline = True
    assert agent.status == AgentState.offline
    assert not agent.has_capacity()
    record = agent.record()
    assert record.status == AgentState.offline
    assert record.capabilities == ["paint", "sketch"]


def test_the_registry_finds_the_least_loaded_capable_agent() -> None:
    registry = AgentRegistry()
    a = registry.register(Painter("a", concurrency=2))
    b = registry.register(Painter("b", concurrency=1))
    assert registry.least_loaded("paint") is a  # equal load: registration order
    a.task_started("x")
    assert registry.least_loaded("paint") is b  # b: 0 of 1, a: 1 of 2
    b.task_started("y")
    assert registry.least_loaded("paint") is a
    a.task_started("z")
    assert registry.least_loaded("paint") is None  # everyone is full
    assert registry.least_loaded("sing") is None
    assert registry.skills == {"paint", "sketch"}
    registry.unregister("a")
    assert "a" not in registry
    assert registry.capable("paint") == [b]


def test_the_registry_refuses_what_it_cannot_use() -> None:
    registry = AgentRegistry()
    registry.register(Painter("a"))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Painter("a"))
    with pytest.raises(ValueError, match="has no skills"):
        registry.register(Agent("idle-hands"))
    with pytest.raises(AgentNotFound, match=r"no agent named 'b' \(registered: a\)"):
        registry.get("b")
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Painter("c", concurrency=0)
