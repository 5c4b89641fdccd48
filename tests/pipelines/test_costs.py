"""What hosted providers cost a workflow: spend, max_cost, the result cache, providers
that are not ready, and remote jobs that survive a restart."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from vimax_nb.pipelines.editing import probe_video
from vimax_nb.protocol import ControlAction, WorkflowRecord, WorkflowState
from vimax_nb.providers import ProviderCatalog, ProviderSettings
from vimax_nb.providers.cache import ResultCache
from vimax_nb.store import Store

from .fakes import BILLED_PRICES, SMALL, Billed, Wrapped, billed, vimax

IDEA = "A lighthouse keeper befriends a whale"
PARAMS = {"idea": IDEA, **SMALL}


def _expected_cost(wrapped: Wrapped) -> float:
    """$0.01 a chat answer, $0.10 an image, $1 a second of video (1 s clips)."""
    calls = wrapped.calls
    return 0.01 * calls["chat"] + 0.10 * calls["image"] + 1.0 * calls["video"]


async def test_every_paid_call_is_counted_in_the_workflow_record(tmp_path: Path) -> None:
    wrapped = Wrapped()
    catalog = ProviderCatalog.of(billed(wrapped), BILLED_PRICES)
    async with vimax(tmp_path, catalog) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", PARAMS)
        done = await coordinator.wait(record.id, timeout=120)
        agent = coordinator.agents.get("video_generator").record()

    assert done.state == WorkflowState.completed, done.message
    cost = done.cost
    assert cost.total == pytest.approx(_expected_cost(wrapped))
    assert cost.calls == sum(wrapped.calls.values())
    assert cost.models["billed-video"].video_seconds == 3.0
    assert cost.models["billed-image"].images == wrapped.calls["image"]
    assert cost.models["billed-chat"].output_tokens == 500 * wrapped.calls["chat"]
    # the spend is stored with the record, and shown as it grows
    stored = await _stored(tmp_path, record.id)
    assert stored is not None
    assert stored.cost.total == pytest.approx(cost.total)
    spends = [e.details.cost for e in recorder.progress(record.id) if e.details.event == "spend"]
    assert spends == sorted(spends)
    assert spends[-1] == pytest.approx(cost.total)
    # a clip waiting on its model says so, in the workflow's room and on the agent
    waits = [e for e in recorder.progress(record.id) if e.details.event == "task_activity"]
    assert any(e.details.activity == "waiting on billed-video (0 s)" for e in waits)
    assert waits[-1].details.activity == ""  # cleared when the call ends
    busy = recorder.of("agent_status", agent_name="video_generator")
    assert any(e.metrics.activity == "waiting on billed-video (0 s)" for e in busy)
    assert agent.metrics.activity is None
    assert [(p.role, p.provider, p.model, p.ready) for p in agent.providers] == [
        ("video", "billed", "billed-video", True)
    ]


async def test_max_cost_stops_the_run_before_a_call_would_overspend(tmp_path: Path) -> None:
    wrapped = Wrapped()
    videos = billed(wrapped).video
    catalog = ProviderCatalog.of(billed(wrapped), BILLED_PRICES)
    catalog.entry("video").model = videos
    # The story, portraits and frames cost $1.28; $2.50 pays for one 1 s clip, not two.
    async with vimax(tmp_path, catalog) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", {**PARAMS, "max_cost": 2.5})
        done = await coordinator.wait(record.id, timeout=120)

    assert done.state == WorkflowState.failed
    assert done.cost.total <= 2.5
    assert done.cost.max_cost == 2.5
    assert isinstance(videos, Billed)
    assert len(videos.jobs_started) == 1  # the refused clips were never sent
    assert "max_cost of $2.50" in done.message
    assert "BudgetExceeded" in done.message
    [error] = recorder.of("error", target_id=record.id)
    assert error.retryable is False
    assert error.details["attempts"] == 1
    assert not (tmp_path / record.id / "final_video.mp4").exists()


async def test_a_server_max_cost_applies_to_workflows_that_set_none(tmp_path: Path) -> None:
    catalog = ProviderCatalog.of(billed(Wrapped()), BILLED_PRICES)
    async with vimax(tmp_path, catalog, max_cost=0.05) as (coordinator, _):
        record = await coordinator.submit("idea2video", PARAMS)
        done = await coordinator.wait(record.id, timeout=60)
    assert done.params["max_cost"] == 0.05
    assert done.state == WorkflowState.failed
    assert "max_cost of $0.05" in done.message


async def test_the_cache_answers_a_rerun_and_a_new_seed_pays_again(tmp_path: Path) -> None:
    wrapped = Wrapped()
    cache = ResultCache(tmp_path / "cache")
    catalog = ProviderCatalog.of(billed(wrapped), BILLED_PRICES, cache)
    async with vimax(tmp_path, catalog) as (coordinator, _):
        first = await coordinator.wait(
            (await coordinator.submit("idea2video", PARAMS)).id, timeout=120
        )
        paid = dict(wrapped.calls)
        again = await coordinator.wait(
            (await coordinator.submit("idea2video", PARAMS)).id, timeout=120
        )
        assert dict(wrapped.calls) == paid  # not one call reached the provider
        reseeded = await coordinator.wait(
            (await coordinator.submit("idea2video", {**PARAMS, "seed": 9})).id, timeout=120
        )

    assert first.state == again.state == reseeded.state == WorkflowState.completed
    assert again.cost.total == 0.0
    assert again.cost.cached_calls == again.cost.calls == first.cost.calls
    assert probe_video(tmp_path / again.id / "final_video.mp4").frames == 18
    assert wrapped.calls["video"] == 2 * paid["video"]
    assert reseeded.cost.total > 0


async def test_a_run_whose_provider_is_not_ready_fails_at_once_with_the_reason(
    tmp_path: Path,
) -> None:
    wrapped = Wrapped()
    catalog = ProviderCatalog.configure(
        {"video": ProviderSettings(provider="googel")}, environ={}, discover=False
    )
    catalog.entry("chat").model = wrapped
    async with vimax(tmp_path, catalog) as (coordinator, _):
        record = await coordinator.submit("idea2video", PARAMS)
        done = await coordinator.wait(record.id, timeout=10)
        agent = coordinator.agents.get("video_generator").record()
        picked = await coordinator.submit(
            "idea2video", {**PARAMS, "providers": {"video": "procedural", "image": "replicate"}}
        )
    assert done.state == WorkflowState.failed
    assert "unknown video provider 'googel'" in done.message
    assert "it cannot start" in done.message
    assert sum(wrapped.calls.values()) == 0  # nothing ran, nothing was paid
    [status] = agent.providers
    assert (status.provider, status.ready) == ("googel", False)
    assert "choose one of" in str(status.problem)
    assert picked.state == WorkflowState.failed
    assert "no image provider 'replicate' configured" in picked.message


async def test_a_restart_mid_job_resumes_the_same_remote_job(tmp_path: Path) -> None:
    wrapped = Wrapped()
    providers = billed(wrapped)
    video = providers.video
    assert isinstance(video, Billed)
    video.video_gate = threading.Event()
    catalog = ProviderCatalog.of(providers, BILLED_PRICES)
    async with vimax(tmp_path, catalog) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", PARAMS)
        await recorder.wait_for(
            lambda e: e.type == "progress" and e.details.event == "task_activity", 60
        )
    # The server stopped while clips waited on their jobs: they are kept, not canceled.
    started = list(video.jobs_started)
    assert started
    video.video_gate.set()
    async with vimax(tmp_path, catalog) as (coordinator, _):
        await coordinator.control(record.id, ControlAction.resume)
        done = await coordinator.wait(record.id, timeout=120)
    assert done.state == WorkflowState.completed, done.message
    assert sorted(video.jobs_resumed) == sorted(started)
    assert len(video.jobs_started) + len(video.jobs_resumed) - len(started) == 3


async def _stored(workdir: Path, workflow_id: str) -> WorkflowRecord | None:
    store = await Store.open(workdir / "vimax.sqlite3")
    try:
        return await store.workflows.get(workflow_id)
    finally:
        await store.close()
