"""What a run spends and waits on, and the providers: the view model's lines, a Run and a
Fleet following them from events of the fake server, and ``Client.providers()``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vimax_nb.client import Client, VimaxError
from vimax_nb.client.fleet import Fleet
from vimax_nb.client.view import (
    SERVER_DEFAULT,
    ProviderChoices,
    activity_lines,
    agent_activity,
    format_cost,
    provider_choices,
    provider_line,
    shows_spend,
    spend_line,
    task_label,
    total_spend,
)
from vimax_nb.protocol import (
    AgentMetrics,
    AgentRecord,
    CostSummary,
    ModelSpend,
    ProviderStatus,
    agent_room,
    workflow_room,
)

from .fake_server import FakeServer, no_metrics, workflow_record
from .helpers import QUICK_RECONNECT, fixture_server, wait_run  # noqa: F401  (a fixture)

NO_KEY = "no google API key: set GEMINI_API_KEY (or GOOGLE_API_KEY) in the server's environment"
PROVIDERS = [
    ProviderStatus(role="chat", provider="procedural", model="procedural", ready=True),
    ProviderStatus(role="chat", provider="openai", model="gpt-4o-mini", ready=True, default=True),
    ProviderStatus(role="image", provider="procedural", model="procedural", ready=True),
    ProviderStatus(
        role="image",
        provider="openai",
        model="gpt-image-1",
        ready=False,
        problem="no OpenAI API key: set OPENAI_API_KEY",
    ),
    ProviderStatus(role="image", provider="stub", model="stub-1", ready=True, default=True),
    ProviderStatus(role="video", provider="procedural", model="procedural", ready=True),
    ProviderStatus(
        role="video",
        provider="google",
        model="veo-3.0-generate-001",
        ready=False,
        problem=NO_KEY,
        default=True,
    ),
]


# -- the view model ----------------------------------------------------------------------


def test_costs_read_as_dollars() -> None:
    assert format_cost(0) == "$0.00"
    assert format_cost(0.004) == "<$0.01"
    assert format_cost(1.234) == "$1.23"
    assert format_cost(1234.5) == "$1,234.50"


def test_the_spend_line_says_what_was_spent_of_the_max_and_the_calls() -> None:
    assert spend_line(CostSummary(total=1.23, calls=14, cached_calls=3)) == (
        "$1.23 spent · 14 calls (3 cached)"
    )
    assert spend_line(CostSummary(total=1.23, calls=14, cached_calls=3, max_cost=5)) == (
        "$1.23 spent of $5.00 max · 14 calls (3 cached)"
    )
    assert spend_line(CostSummary(total=0.5, calls=1)) == "$0.50 spent · 1 call"
    assert spend_line(CostSummary(total=0.5)) == "$0.50 spent"  # the calls not known yet
    assert spend_line(CostSummary(max_cost=2)) == "$0.00 spent of $2.00 max"
    assert not shows_spend(CostSummary())
    assert shows_spend(CostSummary(max_cost=2))
    assert shows_spend(CostSummary(calls=3, cached_calls=3))  # all from the cache: $0, shown
    assert shows_spend(CostSummary(total=0.01))


def test_tasks_read_in_words_and_their_activities_in_graph_order() -> None:
    assert task_label("scene/0/shot/2/clip") == "shot 3 clip"
    assert task_label("scene/1/shot/0/frames") == "scene 2 shot 1 frames"
    assert task_label("scene/0/storyboard") == "scene 1 storyboard"
    assert task_label("scene/2/video") == "scene 3 video"
    assert task_label("portrait/0") == "portrait 1"
    assert task_label("story") == "story"
    assert task_label("scene_video/x") == "scene video x"
    activities = {
        "scene/0/shot/10/clip": "waiting on veo-3.0-generate-001 (3 s)",
        "scene/0/shot/2/clip": "waiting on veo-3.0-generate-001 (42 s)",
        "portrait/1": "  ",
    }
    assert activity_lines(activities) == [
        "shot 3 clip: waiting on veo-3.0-generate-001 (42 s)",
        "shot 11 clip: waiting on veo-3.0-generate-001 (3 s)",
    ]


def test_a_provider_line_says_why_it_is_not_ready() -> None:
    assert provider_line(PROVIDERS[0]) == "chat: procedural procedural"
    assert provider_line(PROVIDERS[-1]) == (
        f"video: google veo-3.0-generate-001 · not ready: {NO_KEY}"
    )
    busy = AgentRecord(
        name="video_generator",
        status="busy",
        metrics=AgentMetrics(activity="waiting on veo-3.0-generate-001 (42 s)"),
    )
    assert agent_activity(busy) == "waiting on veo-3.0-generate-001 (42 s)"
    assert agent_activity(AgentRecord(name="idle", status="idle")) is None


def test_the_pickers_offer_only_ready_providers_with_the_default_chosen() -> None:
    assert provider_choices(PROVIDERS, "chat") == ProviderChoices(
        [("procedural procedural", "procedural"), ("openai gpt-4o-mini (default)", "openai")],
        "openai",
        "",
    )
    image = provider_choices(PROVIDERS, "image")
    assert [value for _, value in image.options] == ["procedural", "stub"]  # not openai
    assert image.value == "stub"
    # the default is not ready: procedural is chosen, and the note says why
    video = provider_choices(PROVIDERS, "video")
    assert video.options == [("procedural procedural", "procedural")]
    assert video.value == "procedural"
    assert video.note == f"the default video provider google is not ready: {NO_KEY}"
    # nothing known: the server's default
    assert provider_choices([], "video") == ProviderChoices(
        [("server default", SERVER_DEFAULT)], SERVER_DEFAULT, ""
    )


def test_the_total_spend_of_workflows() -> None:
    records = [
        workflow_record("a").model_copy(update={"cost": CostSummary(total=1.25)}),
        workflow_record("b").model_copy(update={"cost": CostSummary(total=0.5)}),
        workflow_record("c"),
    ]
    assert total_spend(records) == 1.75


# -- a run -------------------------------------------------------------------------------


@pytest.fixture
def client(server: FakeServer) -> Iterator[Client]:
    made = Client(server.url, "token", socket_options=QUICK_RECONNECT)
    try:
        yield made
    finally:
        made.close()


def activity(task: str, text: str, **details: object) -> dict[str, object]:
    """The fields of a ``task_activity`` progress event."""
    return {"details": {"event": "task_activity", "task": task, "activity": text, **details}}


def test_a_run_keeps_what_each_task_waits_on_until_it_moves_on(
    server: FakeServer, client: Client
) -> None:
    server.workflows["wf"] = workflow_record("wf")
    run = client.run("wf")
    room = workflow_room("wf")
    clip, frames, portrait = "scene/0/shot/2/clip", "scene/0/shot/3/frames", "portrait/0"
    server.publish(room, **activity(clip, "waiting on veo-3.0-generate-001 (0 s)"))
    server.publish(room, **activity(frames, "waiting on gpt-image-1"))
    seq = server.publish(room, **activity(portrait, "waiting on gpt-image-1"))
    wait_run(run, lambda r: r.events >= seq)
    assert run.activities == {
        clip: "waiting on veo-3.0-generate-001 (0 s)",
        frames: "waiting on gpt-image-1",
        portrait: "waiting on gpt-image-1",
    }
    seq = server.publish(room, **activity(clip, "waiting on veo-3.0-generate-001 (42 s)"))
    wait_run(run, lambda r: r.events >= seq)
    assert activity_lines(run.activities) == [
        "portrait 1: waiting on gpt-image-1",
        "shot 3 clip: waiting on veo-3.0-generate-001 (42 s)",
        "shot 4 frames: waiting on gpt-image-1",
    ]

    # an empty activity clears it; so do a completion, a retry and a failure
    server.publish(room, **activity(frames, ""))
    seq = server.publish(room, details={"event": "task_completed", "task": portrait})
    wait_run(run, lambda r: r.events >= seq)
    assert list(run.activities) == [clip]
    seq = server.publish(room, details={"event": "task_retrying", "task": clip, "attempt": 1})
    wait_run(run, lambda r: r.events >= seq)
    assert run.activities == {}
    server.publish(room, **activity(clip, "waiting on veo-3.0-generate-001 (1 s)"))
    seq = server.publish(
        room,
        type="error",
        target_type="workflow",
        target_id="wf",
        code="task_failed",
        message="boom",
        details={"task": clip},
    )
    wait_run(run, lambda r: r.events >= seq)
    assert run.activities == {}

    # the run's end clears every task's
    server.publish(room, **activity(frames, "waiting on gpt-image-1"))
    seq = server.publish(room, state="completed", progress=1.0)
    wait_run(run, lambda r: r.events >= seq)
    assert run.activities == {}


def test_a_run_interrupted_or_reset_forgets_the_activities(
    server: FakeServer, client: Client
) -> None:
    server.workflows["wf"] = workflow_record("wf")
    run = client.run("wf")
    room = workflow_room("wf")
    seq = server.publish(room, **activity("story", "waiting on gpt-4o-mini"))
    wait_run(run, lambda r: r.events >= seq)
    assert run.activities == {"story": "waiting on gpt-4o-mini"}
    seq = server.publish(room, state="interrupted", details={"event": "state"})
    wait_run(run, lambda r: r.events >= seq)
    assert run.activities == {}


def test_a_run_spends_by_its_record_then_its_events_then_its_final_record(
    server: FakeServer, client: Client
) -> None:
    server.workflows["wf"] = workflow_record("wf").model_copy(
        update={"params": {"idea": "A whale", "max_cost": 5.0}}
    )
    run = client.run("wf")
    assert run.cost == CostSummary(max_cost=5.0)  # the workflow's max, known from its params
    assert spend_line(run.cost) == "$0.00 spent of $5.00 max"
    room = workflow_room("wf")
    seq = server.publish(room, **activity("story", "", cost=0.42))
    wait_run(run, lambda r: r.events >= seq)
    assert run.cost.total == 0.42
    assert spend_line(run.cost) == "$0.42 spent of $5.00 max"

    # the end: the final record (calls, models) is read, and the run shows it
    final = CostSummary(
        total=1.23,
        calls=14,
        cached_calls=3,
        max_cost=5.0,
        models={"gpt-4o-mini": ModelSpend(provider="openai", role="chat", calls=14, cost=1.23)},
    )
    server.workflows["wf"] = server.workflows["wf"].model_copy(update={"cost": final})
    server.publish(room, state="completed", progress=1.0)
    wait_run(run, lambda r: r.cost.calls == 14)
    assert run.cost == final
    assert spend_line(run.cost) == "$1.23 spent of $5.00 max · 14 calls (3 cached)"


def test_providers_lists_the_servers_and_says_when_it_cannot(
    server: FakeServer, client: Client
) -> None:
    with pytest.raises(VimaxError) as missing:  # an older server: no such endpoint
        client.providers()
    assert missing.value.status == 404
    server.providers = PROVIDERS
    assert client.providers() == PROVIDERS


def test_the_fleet_keeps_an_agents_providers_and_activity(server: FakeServer) -> None:
    video = PROVIDERS[-1]
    server.agents["video_generator"] = AgentRecord(
        name="video_generator", status="idle", providers=[video]
    )
    server.metrics = no_metrics(registered_agents=1)
    client = Client(server.url, "token", socket_options=QUICK_RECONNECT)
    fleet = Fleet(client)
    try:
        assert _agent(fleet).providers == [video]  # loaded over REST
        room = agent_room("video_generator")
        waiting = "waiting on veo-3.0-generate-001 (42 s)"
        server.publish(  # no providers in the event: they are unchanged
            room,
            type="agent_status",
            agent_name="video_generator",
            status="busy",
            metrics={"activity": waiting},
        )
        assert fleet.wait_for(lambda f: _activity(f) == waiting, 10)
        assert _agent(fleet).providers == [video]
        ready = video.model_copy(update={"ready": True, "problem": None})
        server.publish(
            room,
            type="agent_status",
            agent_name="video_generator",
            status="idle",
            providers=[ready.model_dump()],
        )
        assert fleet.wait_for(lambda f: _agent(f).providers == [ready], 10)
        assert _activity(fleet) is None
    finally:
        fleet.close()
        client.close()


def _agent(fleet: Fleet) -> AgentRecord:
    agent = fleet.agent("video_generator")
    assert agent is not None
    return agent


def _activity(fleet: Fleet) -> str | None:
    return agent_activity(_agent(fleet))
