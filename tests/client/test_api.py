"""vimax_nb.client.Client and Run against a real Jupyter server with the extension.

The client blocks its calling thread (REST) or works on the connection's thread, while
the server runs on the test's loop: every blocking call goes through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.client import Client, Run, RunCanceled, RunResult, VimaxError, api
from vimax_nb.protocol import AgentRecord, CoordinatorMetricsEvent, ProgressEvent, WorkflowState

from ..server.conftest import (  # noqa: F401  (fixtures that enable the extension)
    Gate,
    install_toy,
    jp_server_config,
    service_of,
    small_params,
    vimax_workdir,
)

IDEA = "A lighthouse keeper befriends a whale"
TIMEOUT = 90.0


@pytest.fixture(name="server_url")
def fixture_server_url(
    jp_serverapp: Any, jp_fetch: Any, jp_http_port: int, jp_base_url: str
) -> str:
    """The server's base URL (``jp_fetch`` makes pytest-jupyter start listening)."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture(name="token")
def fixture_token(jp_serverapp: Any) -> str:
    value: str = jp_serverapp.identity_provider.token
    return value


@pytest.fixture(name="closing")
def fixture_closing(jp_asyncio_loop: Any) -> Iterator[Callable[[Client], Client]]:
    """Close the given clients at the end of the test, while the server's loop runs."""
    made: list[Client] = []

    def keep(client: Client) -> Client:
        made.append(client)
        return client

    yield keep
    for client in made:
        jp_asyncio_loop.run_until_complete(asyncio.to_thread(client.close))


@pytest.fixture(name="client")
def fixture_client(
    jp_serverapp: Any, server_url: str, token: str, closing: Callable[[Client], Client]
) -> Client:
    """A Client that knows the server's workdir (it is on this machine)."""
    workdir = service_of(jp_serverapp).workdir
    return closing(Client(server_url, token, workdir=workdir))


@pytest.fixture
def toy(jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: Any) -> Iterator[Gate]:
    """The toy 'story' pipeline on the server's coordinator; its outline waits for the gate."""
    gate = Gate()
    service = service_of(jp_serverapp)
    jp_asyncio_loop.run_until_complete(service.ensure_started())
    coordinator = service.coordinator
    install_toy(coordinator, gate)
    try:
        yield gate
    finally:
        gate.opened.set()


class Changes:
    """Counts on_change calls (on the connection's thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: list[WorkflowState] = []
        self.threads: set[str] = set()

    def __call__(self, run: Run) -> None:
        with self.lock:
            self.states.append(run.state)
            self.threads.add(threading.current_thread().name)


async def test_idea2video_runs_to_a_result_with_local_files(client: Client, tmp_path: Path) -> None:
    run = await asyncio.to_thread(client.idea2video, IDEA, **small_params())
    changes = Changes()
    remove = run.on_change(changes)
    assert run.kind == "idea2video"
    assert run.id

    result = await asyncio.to_thread(run.wait, TIMEOUT)

    assert isinstance(result, RunResult)
    assert isinstance(result.video, Path)
    assert result.video.is_file()
    assert result.video.stat().st_size > 0
    assert result.frames
    assert all(isinstance(f, Path) and f.is_file() for f in result.frames)
    assert result.story is not None
    assert result.script is not None
    assert result.characters is not None
    assert result.workflow.id == run.id
    assert result.workflow.state == "completed"

    assert run.state == "completed"
    assert run.progress == 1.0
    assert run.done
    assert run.stages
    assert all(s.done == s.total for s in run.stages)
    assert any(a.name for a in run.artifacts)
    assert run.events >= len(run.artifacts) + 2
    assert repr(run) == "Run(idea2video 'A lighthouse keeper...' completed 100%)"
    with changes.lock:
        assert changes.states[-1] == "completed"
        assert changes.threads == {"vimax-connection"}
    remove()

    # the REST reads agree with the run
    records = await asyncio.to_thread(client.workflows)
    assert run.id in [r.id for r in records]
    assert await asyncio.to_thread(client.run, run.id) is run
    agents = await asyncio.to_thread(client.agents)
    assert agents
    assert all(isinstance(a, AgentRecord) and a.name for a in agents)
    metrics = await asyncio.to_thread(client.coordinator)
    assert isinstance(metrics, CoordinatorMetricsEvent)
    assert metrics.total_workflows >= 1

    saved = await asyncio.to_thread(client.download, run.id, "final_video.mp4", tmp_path)
    assert saved == tmp_path / "final_video.mp4"
    assert saved.read_bytes() == result.video.read_bytes()


async def test_without_a_local_workdir_results_are_artifact_urls(
    server_url: str, token: str, closing: Callable[[Client], Client], toy: Gate
) -> None:
    remote = closing(Client(server_url, token))
    toy.opened.set()
    run = await asyncio.to_thread(remote.submit, "story", shots=1)
    result = await run  # the toy's result has no video, so use the record instead
    assert result.video is None
    assert result.workflow.state == "completed"
    assert remote.artifact(run.id, "shots/0.png") == (
        f"{server_url}vimax/api/workflows/{run.id}/artifacts/shots/0.png"
    )


async def test_pause_resume_cancel_and_wait_raises_run_canceled(client: Client, toy: Gate) -> None:
    run = await asyncio.to_thread(client.submit, "story", shots=1)
    assert await asyncio.to_thread(toy.entered.wait, 10)

    with pytest.raises(TimeoutError, match=f"workflow {run.id} .* after 0.05 s"):
        await asyncio.to_thread(run.wait, 0.05)

    assert await asyncio.to_thread(run.pause) == WorkflowState.paused
    with pytest.raises(VimaxError) as refused:
        await asyncio.to_thread(run.pause)
    assert refused.value.status == 409
    assert refused.value.message

    assert await asyncio.to_thread(run.resume) == "running"
    assert await asyncio.to_thread(run.cancel) == "canceled"
    with pytest.raises(RunCanceled) as canceled:
        await asyncio.to_thread(run.wait, 10)
    assert canceled.value.run is run
    assert run.state == "canceled"
    assert repr(run) == f"Run(story {run.id} canceled {run.progress:.0%})"

    with pytest.raises(VimaxError, match="canceled") as late:
        await asyncio.to_thread(run.cancel)
    assert late.value.status == 409


async def test_invalid_params_raise_vimax_error_400_with_the_servers_message(
    client: Client,
) -> None:
    with pytest.raises(VimaxError) as caught:
        await asyncio.to_thread(client.idea2video, IDEA, **small_params(shots_per_scene=0))
    assert caught.value.status == 400
    assert "shots_per_scene" in caught.value.message
    assert "shots_per_scene" in str(caught.value)
    assert [e["field"] for e in caught.value.body["errors"]] == ["shots_per_scene"]

    with pytest.raises(VimaxError) as missing:
        await asyncio.to_thread(client.workflow, "nosuchflow")
    assert missing.value.status == 404
    assert "nosuchflow" in missing.value.message


async def test_a_priority_is_sent_when_it_is_not_0_and_the_server_keeps_it(
    client: Client, toy: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted: list[Any] = []
    request = client._request

    def recording(method: str, path: str, body: Any = None, **options: Any) -> Any:
        if method == "POST" and path == "vimax/api/workflows":
            posted.append(body)
        return request(method, path, body, **options)

    monkeypatch.setattr(client, "_request", recording)
    toy.opened.set()
    urgent = await asyncio.to_thread(client.submit, "story", priority=3, shots=1)
    plain = await asyncio.to_thread(client.submit, "story", shots=1)
    # the default is left out, so a server that knows no priority still accepts it
    assert posted == [
        {"kind": "story", "params": {"shots": 1}, "priority": 3},
        {"kind": "story", "params": {"shots": 1}},
    ]
    assert (urgent.record.priority, plain.record.priority) == (3, 0)
    assert (await asyncio.to_thread(client.workflow, urgent.id)).priority == 3
    await urgent
    await plain

    with pytest.raises(VimaxError) as refused:
        await asyncio.to_thread(client.script2video, "INT. SEA - DAY", priority=11)
    assert refused.value.status == 400
    assert "'priority' must be a whole number from -10 to 10" in refused.value.message
    run = await asyncio.to_thread(client.idea2video, IDEA, priority=-2, **small_params())
    assert posted[-1]["priority"] == -2
    assert posted[-1]["params"]["idea"] == IDEA
    assert (await asyncio.wait_for(run, TIMEOUT)).workflow.priority == -2


async def test_await_run_in_a_coroutine(client: Client, toy: Gate) -> None:
    run = await asyncio.to_thread(client.submit, "story", shots=2)
    assert not run.done
    toy.opened.set()
    result = await run
    assert result.workflow.state == "completed"
    assert run.state == "completed"
    assert run.progress == 1.0
    assert {"shot 0", "shot 1"} <= {a.name for a in run.artifacts}
    # a finished run is awaited again at once
    again = await asyncio.wait_for(awaited(run), 10)
    assert again.workflow.id == run.id


async def awaited(run: Run) -> RunResult:
    return await run


async def test_events_reads_the_durable_log_in_pages(
    client: Client, toy: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    toy.opened.set()
    run = await asyncio.to_thread(client.submit, "story", shots=3)
    await run
    everything = await asyncio.to_thread(client.events, run.id)
    seqs = [event.seq for event in everything.events]
    assert seqs == list(range(1, everything.top + 1))
    last = everything.events[-1]
    assert isinstance(last, ProgressEvent)
    assert last.state == "completed"
    assert everything.floor == 0
    assert everything.epoch == client.connection.epoch
    assert list(run.history) == everything.events  # the live run saw the same

    monkeypatch.setattr(api, "EVENTS_PAGE", 2)  # several pages for one call
    paged = await asyncio.to_thread(client.events, run.id, 1)
    assert paged.events == everything.events[1:]
    first = await asyncio.to_thread(client.events, run.id, 0, 3)
    assert [event.seq for event in first.events] == [1, 2, 3]

    with pytest.raises(VimaxError, match="no workflow with id 'nope'") as info:
        await asyncio.to_thread(client.events, "nope")
    assert info.value.status == 404
    with pytest.raises(ValueError, match="after must be >= 0"):
        await asyncio.to_thread(client.events, run.id, -1)
