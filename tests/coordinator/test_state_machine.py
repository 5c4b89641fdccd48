"""Random interleavings of control actions and task outcomes never break a workflow."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vimax_nb.coordinator import (
    Agent,
    Coordinator,
    InvalidTransition,
    RetryableError,
    RetryPolicy,
    TaskContext,
)
from vimax_nb.coordinator.transitions import TRANSITIONS
from vimax_nb.protocol import TERMINAL_STATES, ControlAction, WorkflowRecord, WorkflowState

from .toy import StoryPipeline

S = WorkflowState
APPLIES = {
    ControlAction.pause: {S.pending, S.running},
    ControlAction.resume: {S.paused, S.interrupted},
    ControlAction.cancel: {S.pending, S.running, S.paused, S.interrupted},
}
TARGET = {ControlAction.pause: S.paused, ControlAction.resume: S.running}


class GatedAgent(Agent):
    """Performs every skill of the story pipeline, each task waiting for the test's word."""

    def __init__(self, machine: CoordinatorMachine, name: str, concurrency: int) -> None:
        super().__init__(name, concurrency=concurrency)
        self.machine = machine
        for skill_id in ("outline", "draw", "edit"):
            self.add_skill(skill_id, self.perform)

    async def perform(self, ctx: TaskContext) -> Any:
        return await self.machine.perform(ctx)


class CoordinatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.gates: dict[tuple[str, str], asyncio.Future[str]] = {}
        self.runs_of: Counter[tuple[str, str]] = Counter()
        self.attempts: dict[tuple[str, str], int] = {}
        self.completed: dict[str, set[str]] = {}
        self.violations: list[str] = []
        self.coordinator = Coordinator(
            max_concurrent_tasks=2, retry=RetryPolicy(max_attempts=2, backoff=0.0)
        )
        self.coordinator.register_pipeline(StoryPipeline())
        self.coordinator.register_agent(GatedAgent(self, "a", concurrency=1))
        self.coordinator.register_agent(GatedAgent(self, "b", concurrency=2))
        self.coordinator.add_listener(self.on_event)
        self.states: dict[str, list[WorkflowState]] = {}
        self.ids: list[str] = []
        self.loop.run_until_complete(self.coordinator.start())

    # -- the world the coordinator sees ------------------------------------------

    async def perform(self, ctx: TaskContext) -> Any:
        key = (ctx.workflow_id, ctx.task_key)
        if key in self.gates:
            self.violations.append(f"{key} started while it was already running")
        if ctx.task_key in self.completed.get(ctx.workflow_id, ()):
            self.violations.append(f"{key} started again after it succeeded")
        self.runs_of[key] += 1
        self.attempts[key] = ctx.attempt
        gate = self.loop.create_future()
        self.gates[key] = gate
        try:
            outcome = await gate
        finally:
            del self.gates[key]
        if outcome == "retryable":
            raise RetryableError("try again")
        if outcome == "fatal":
            raise ValueError("broken")
        if ctx.skill == "outline":
            return {"shots": ctx.workflow_params["shots"]}
        if ctx.skill == "draw":
            return {"shot": ctx.params["shot"]}
        return {"film": sorted(v["shot"] for v in ctx.inputs.values())}

    def on_event(self, event: Any) -> None:
        if event.type != "progress":
            return
        states = self.states.setdefault(event.workflow_id, [])
        if not states or states[-1] != event.state:
            states.append(event.state)
        if event.details.event == "task_started" and event.state != S.running:
            self.violations.append(f"a task started while its workflow was {event.state}")
        if event.details.event == "task_completed":
            self.completed.setdefault(event.workflow_id, set()).add(str(event.details.task))

    def settle(self) -> None:
        for _ in range(30):
            self.loop.run_until_complete(asyncio.sleep(0))

    def record(self, workflow_id: str) -> WorkflowRecord:
        return self.loop.run_until_complete(self.coordinator.get_workflow(workflow_id))

    # -- rules -------------------------------------------------------------------

    @precondition(lambda self: len(self.ids) < 2)
    @rule(shots=st.integers(1, 4))
    def submit(self, shots: int) -> None:
        record = self.loop.run_until_complete(self.coordinator.submit("story", {"shots": shots}))
        self.ids.append(record.id)
        self.settle()

    @precondition(lambda self: bool(self.gates))
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "ok", "ok", "retryable", "fatal"]))
    def finish_task(self, data: st.DataObject, outcome: str) -> None:
        # Workflow ids are random: order the running tasks by submission instead.
        keys = sorted(self.gates, key=lambda k: (self.ids.index(k[0]), k[1]))
        key = data.draw(st.sampled_from(keys))
        self.gates[key].set_result(outcome)
        self.settle()

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data(), action=st.sampled_from(list(ControlAction)))
    def control(self, data: st.DataObject, action: ControlAction) -> None:
        workflow_id = data.draw(st.sampled_from(self.ids))
        before = self.record(workflow_id).state
        try:
            record = self.loop.run_until_complete(self.coordinator.control(workflow_id, action))
        except InvalidTransition:
            assert before not in APPLIES[action], f"{action} refused from {before}"
        else:
            assert before in APPLIES[action], f"{action} accepted from {before}"
            if action == ControlAction.cancel:
                assert record.state == S.canceled
            else:
                assert record.state in {TARGET[action], S.completed}
        self.settle()

    # -- invariants --------------------------------------------------------------

    @invariant()
    def nothing_ran_twice(self) -> None:
        assert not self.violations, self.violations

    @invariant()
    def states_only_change_along_allowed_transitions(self) -> None:
        for workflow_id, states in self.states.items():
            for before, after in itertools.pairwise(states):
                assert after in TRANSITIONS[before], f"{workflow_id}: {before} -> {after}"

    @invariant()
    def finished_workflows_run_nothing_and_completed_ones_did_everything(self) -> None:
        finished = 0
        for workflow_id in self.ids:
            record = self.record(workflow_id)
            if record.state not in TERMINAL_STATES:
                continue
            finished += 1
            assert not any(key[0] == workflow_id for key in self.gates)
            if record.state == S.completed:
                shots = record.params["shots"]
                expected = {"outline", "edit", *(f"draw/{i}" for i in range(shots))}
                assert self.completed[workflow_id] == expected
                assert record.result == {"film": list(range(shots))}
        if finished == len(self.ids):
            assert self.coordinator.queue_size == 0

    @invariant()
    def limits_hold(self) -> None:
        assert self.coordinator.scheduler.running <= 2
        for agent in self.coordinator.agents:
            assert len(agent.running) <= agent.concurrency

    @invariant()
    def a_task_runs_at_most_its_attempts(self) -> None:
        for key, count in self.runs_of.items():
            assert count == self.attempts[key] <= 2

    def teardown(self) -> None:
        for gate in self.gates.values():
            gate.cancel()
        self.loop.run_until_complete(self.coordinator.stop())
        self.loop.close()


CoordinatorMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_coordinator_state_machine = CoordinatorMachine.TestCase
