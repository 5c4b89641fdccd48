"""The launchers: form logic against a fake client, and one launch on a real server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.lib.pretty import pretty

from vimax_nb.client import Client, Run, VimaxError
from vimax_nb.pipelines.request import describe_plan, parse_request_offline
from vimax_nb.protocol import ProviderStatus
from vimax_nb.widgets import (
    Idea2VideoLauncher,
    RequestLauncher,
    Script2VideoLauncher,
    WorkflowProgress,
)

from ..client.fake_server import workflow_record
from ..client.test_spend import PROVIDERS
from .fakes import EVIL, IDEA, TIMEOUT, Backend, Watcher, html_values
from .server_fixtures import (  # noqa: F401  (fixtures)
    fixture_live_client,
    jp_server_config,
    small_params,
    vimax_workdir,
)

DEFAULTS = {
    "style": "cinematic",
    "user_requirement": "",
    "scenes": 1,
    "shots_per_scene": 4,
    "width": 640,
    "height": 360,
    "fps": 12,
    "seconds_per_shot": 2.0,
    "seed": 0,
    "providers": {"chat": None, "image": None, "video": None},  # the server's defaults
    "max_cost": None,
}
REQUEST = "a three-scene watercolor video about a fox who learns to fly, for children"


class SubmitClient(Client):
    """A real client of the fake server whose :meth:`submit` records what it is given
    (kind, params, thread) and starts the workflow on the server (whose REST cannot
    create one); ``gate`` holds a submission until set, ``fail`` refuses it."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend.server.url)
        self.server = backend.server
        self.submitted: list[tuple[str, dict[str, Any], int]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None

    def submit(self, kind: str, **params: Any) -> Run:
        self.submitted.append((kind, params, threading.get_ident()))
        self.entered.set()
        assert self.gate.wait(TIMEOUT)
        if self.fail is not None:
            raise self.fail
        workflow_id = f"wf-{len(self.submitted)}"
        record = workflow_record(workflow_id).model_copy(update={"kind": kind, "params": params})
        self.server.workflows[workflow_id] = record
        return self.run(workflow_id)


@pytest.fixture(name="client")
def fixture_client(backend: Backend) -> Iterator[SubmitClient]:
    client = SubmitClient(backend)
    try:
        yield client
    finally:
        client.close()


def test_idea2video_launch_submits_the_form_off_the_kernel_thread(client: SubmitClient) -> None:
    launcher = Idea2VideoLauncher(client, idea="A fox who learns to fly", style="watercolor")
    watcher = Watcher(launcher)
    fields = launcher.form.fields
    assert fields["idea"].value == "A fox who learns to fly"
    assert fields["shots_per_scene"].value == 4  # the model's defaults
    assert (fields["scenes"].min, fields["scenes"].max) == (1, 10)  # the model's bounds
    for name, value in {
        "user_requirement": "for kids",
        "scenes": 3,
        "width": 1280,
        "height": 720,
        "fps": 24,
        "seconds_per_shot": 1.5,
        "seed": 7,
    }.items():
        fields[name].value = value
    assert repr(launcher) == "Idea2VideoLauncher(no runs)"

    client.gate.clear()  # the REST call blocks: the click must return before it ends
    launcher.launch_button.click()
    assert client.entered.wait(TIMEOUT)
    assert repr(launcher) == "Idea2VideoLauncher(launching)"
    watcher.until(lambda: launcher.launch_button.disabled)
    assert launcher.launch_button.description == "Launching\N{HORIZONTAL ELLIPSIS}"
    assert not launcher.launch()  # a second click while one is in flight does nothing
    client.gate.set()
    watcher.until(lambda: "Launched" in launcher.message.value)

    ((kind, params, thread),) = client.submitted
    assert kind == "idea2video"
    assert params == {
        "idea": "A fox who learns to fly",
        "style": "watercolor",
        "user_requirement": "for kids",
        "scenes": 3,
        "shots_per_scene": 4,
        "width": 1280,
        "height": 720,
        "fps": 24,
        "seconds_per_shot": 1.5,
        "seed": 7,
        "providers": {"chat": None, "image": None, "video": None},
        "max_cost": None,
    }
    assert thread != threading.get_ident()
    (progress,) = launcher.progress
    assert isinstance(progress, WorkflowProgress)
    assert launcher.runs_box.children == (progress.box,)
    assert progress.run is launcher.runs[0]
    assert not launcher.launch_button.disabled
    assert "Launched idea2video wf-1." in launcher.message.value
    expected = "Idea2VideoLauncher(1 run, last: idea2video 'A fox who learns to fly' running 0%)"
    assert repr(launcher) == expected
    assert pretty(launcher) == expected

    launcher.launch()  # another run: newest on top
    watcher.until(lambda: len(launcher.runs_box.children) == 2)
    assert launcher.runs_box.children[0] is launcher.progress[1].box


def test_script2video_launch_sends_the_script(client: SubmitClient) -> None:
    script = "INT. LIGHTHOUSE - NIGHT\nThe keeper looks out to sea."
    launcher = Script2VideoLauncher(client, script=script, scenes=2)
    watcher = Watcher(launcher)
    assert launcher.launch()
    watcher.until(lambda: "Launched script2video wf-1." in launcher.message.value)
    ((kind, params, _),) = client.submitted
    assert kind == "script2video"
    assert params == {**DEFAULTS, "script": script, "scenes": 2}


def test_script2video_scenes_default_to_one_per_heading_and_say_so(client: SubmitClient) -> None:
    launcher = Script2VideoLauncher(client, script="INT. SEA - DAY\nWaves.")
    scenes = launcher.form.fields["scenes"]
    assert (scenes.value, scenes.min) == (0, 0)
    assert scenes.description == "scenes (0: one per heading)"
    assert Idea2VideoLauncher(client, idea=IDEA).form.fields["scenes"].description == "scenes"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"idea": "   "}, "Write an idea first: the idea is empty."),
        ({"width": 641}, "width: Input should be a multiple of 2"),
        ({"seconds_per_shot": 0.0}, "seconds per shot: Input should be greater than 0"),
        ({"style": "x" * 201}, "style: String should have at most 200 characters"),
    ],
)
def test_bad_input_is_a_message_and_nothing_is_sent(
    client: SubmitClient, changes: dict[str, Any], message: str
) -> None:
    launcher = Idea2VideoLauncher(client, idea=IDEA)
    for name, value in changes.items():
        launcher.form.fields[name].value = value
    assert not launcher.launch()
    launcher.flush()
    assert message in launcher.message.value
    assert client.submitted == []
    assert not launcher.launch_button.disabled


def test_a_refused_submission_is_a_message_not_an_exception(client: SubmitClient) -> None:
    client.fail = VimaxError(400, "shots_per_scene: <b>too many</b>")
    launcher = Idea2VideoLauncher(client, idea=IDEA)
    watcher = Watcher(launcher)
    assert launcher.launch()
    watcher.until(lambda: "failed" in launcher.message.value)
    assert "The launch failed: 400: shots_per_scene: &lt;b&gt;too many&lt;/b&gt;" in (
        launcher.message.value
    )
    assert not launcher.launch_button.disabled
    assert launcher.runs == []
    assert repr(launcher) == "Idea2VideoLauncher(no runs)"


def test_closing_during_a_submission_leaves_no_panel_open(client: SubmitClient) -> None:
    client.gate.clear()
    launcher = Idea2VideoLauncher(client, idea=IDEA)
    made: list[WorkflowProgress] = []
    closed = threading.Event()
    original, original_close = WorkflowProgress.__init__, WorkflowProgress.close

    def record(panel: WorkflowProgress, *args: Any, **kwargs: Any) -> None:
        original(panel, *args, **kwargs)
        made.append(panel)

    def close(panel: WorkflowProgress) -> None:
        original_close(panel)
        closed.set()

    WorkflowProgress.__init__ = record  # type: ignore[method-assign]
    WorkflowProgress.close = close  # type: ignore[method-assign]
    try:
        assert launcher.launch()
        assert client.entered.wait(TIMEOUT)
        launcher.close()  # while the submission is in flight
        client.gate.set()
        assert closed.wait(TIMEOUT)  # the new run's panel, closed as soon as it was made
    finally:
        WorkflowProgress.__init__ = original  # type: ignore[method-assign]
        WorkflowProgress.close = original_close  # type: ignore[method-assign]
    assert [run.id for run in launcher.runs] == ["wf-1"]  # the run itself goes on
    assert len(made) == 1
    assert made[0].closed
    assert all(panel.closed for panel in launcher.progress)


def test_no_server_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from vimax_nb.client import discovery

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise discovery.VimaxConnectError([("the given url", "connection refused")])

    monkeypatch.setattr(discovery, "default_client", lambda: None)
    monkeypatch.setattr(discovery, "connect", refuse)
    launcher = Idea2VideoLauncher(idea=IDEA)
    watcher = Watcher(launcher)
    assert launcher.launch()
    watcher.until(lambda: "connection refused" in launcher.message.value)
    assert "could not connect to a vimax-nb server" in launcher.message.value


def test_unknown_parameters_are_refused(client: SubmitClient) -> None:
    with pytest.raises(TypeError, match="unknown parameters: colour"):
        Idea2VideoLauncher(client, colour="red")


def test_request_launcher_plans_edits_and_launches(client: SubmitClient) -> None:
    launcher = RequestLauncher(client, request=REQUEST)
    planned = parse_request_offline(REQUEST)
    assert launcher.form.values() == planned.model_dump()
    assert launcher.form.fields["scenes"].value == 3
    assert launcher.form.fields["style"].value == "watercolor"
    assert launcher.plan == describe_plan(planned)
    assert "3 scenes" in launcher.plan_html.value

    watcher = Watcher(launcher)
    launcher.form.fields["scenes"].value = 2  # edit the plan: the line follows
    watcher.until(lambda: "2 scenes" in launcher.plan_html.value)
    assert launcher.launch()
    watcher.until(lambda: "Launched" in launcher.message.value)
    ((kind, params, _),) = client.submitted
    assert kind == "idea2video"
    assert params == {**planned.model_dump(), "scenes": 2}


def test_request_launcher_launch_makes_the_plan_when_there_is_none(client: SubmitClient) -> None:
    launcher = RequestLauncher(client)
    watcher = Watcher(launcher)
    assert launcher.plan_html.value == ""
    launcher.request.value = "a 2-scene anime video about a robot who paints, seed 5"
    assert launcher.launch()
    watcher.until(lambda: "Launched" in launcher.message.value)
    ((_, params, _),) = client.submitted
    assert (params["scenes"], params["style"], params["seed"]) == (2, "anime", 5)
    assert params["idea"] == "A robot who paints"


def test_request_launcher_explains_what_it_cannot_read(client: SubmitClient) -> None:
    launcher = RequestLauncher(client)
    launcher.plan_button.click()
    launcher.flush()
    assert "Type a request first" in launcher.message.value
    launcher.request.value = "please make a video"
    assert not launcher.make_plan()
    launcher.flush()
    assert "could not tell what the video should be about" in launcher.message.value
    assert not launcher.launch()
    assert client.submitted == []


def test_request_launcher_escapes_the_plan(client: SubmitClient) -> None:
    launcher = RequestLauncher(client, request=f"a video about {EVIL}")
    launcher.flush()
    assert "&lt;img src=x onerror=alert(1)&gt;" in launcher.plan_html.value
    for value in html_values(launcher.box):
        if value in (launcher.request.value, launcher.form.fields["idea"].value):
            continue  # the text boxes hold the user's text as text
        assert "<img" not in value, value


# -- providers and cost ------------------------------------------------------------------


def offered(launcher: Any, role: str) -> list[str]:
    """The values a role's provider picker offers."""
    return [value for _label, value in launcher.form.picker.dropdowns[role].options]


def listed(launcher: Any) -> bool:
    """Whether the launcher has drawn the server's providers."""
    return launcher.providers is not None and offered(launcher, "chat") != [""]


def test_the_pickers_offer_only_ready_providers_and_the_launch_sends_the_choice(
    backend: Backend, client: SubmitClient
) -> None:
    backend.server.providers = PROVIDERS
    launcher = Idea2VideoLauncher(client, idea=IDEA)
    watcher = Watcher(launcher)
    watcher.until(lambda: listed(launcher))
    picker = launcher.form.picker
    assert offered(launcher, "chat") == ["procedural", "openai"]
    assert offered(launcher, "image") == ["procedural", "stub"]  # openai is not ready
    assert offered(launcher, "video") == ["procedural"]  # google, the default, is not ready
    labels = [label for label, _value in picker.dropdowns["chat"].options]
    assert labels == ["procedural procedural", "openai gpt-4o-mini (default)"]
    assert {role: d.value for role, d in picker.dropdowns.items()} == {
        "chat": "openai",  # the defaults, chosen
        "image": "stub",
        "video": "procedural",  # the default is not ready: procedural, and the note says why
    }
    assert "the default video provider google is not ready: no google API key" in (
        picker.note.value
    )
    assert picker.max_cost.placeholder == "no limit"

    picker.dropdowns["chat"].value = "procedural"
    picker.max_cost.value = "$2.50"
    assert launcher.launch()
    watcher.until(lambda: "Launched" in launcher.message.value)
    ((_, params, _),) = client.submitted
    assert params["providers"] == {"chat": "procedural", "image": "stub", "video": "procedural"}
    assert params["max_cost"] == 2.5
    assert params["idea"] == IDEA


def test_only_procedural_ready_is_still_offered(backend: Backend, client: SubmitClient) -> None:
    backend.server.providers = [
        ProviderStatus(
            role=role, provider="procedural", model="procedural", ready=True, default=True
        )
        for role in ("chat", "image", "video")
    ] + [
        ProviderStatus(
            role="video", provider="google", model="veo-3", ready=False, problem="no google API key"
        )
    ]
    launcher = Script2VideoLauncher(client, script="INT. SEA - DAY")
    watcher = Watcher(launcher)
    watcher.until(lambda: listed(launcher))
    for role in ("chat", "image", "video"):
        assert offered(launcher, role) == ["procedural"]
        assert launcher.form.picker.dropdowns[role].value == "procedural"
    assert launcher.form.picker.note.value == ""  # every default is ready
    assert launcher.launch()
    watcher.until(lambda: "Launched" in launcher.message.value)
    ((_, params, _),) = client.submitted
    assert params["providers"] == dict.fromkeys(("chat", "image", "video"), "procedural")
    assert params["max_cost"] is None  # empty: no limit


def test_a_server_that_lists_no_providers_uses_its_defaults(client: SubmitClient) -> None:
    launcher = Idea2VideoLauncher(client, idea=IDEA, max_cost=5)  # the fake: 404
    watcher = Watcher(launcher)
    watcher.until(lambda: "does not list its providers" in launcher.form.picker.note.value)
    assert offered(launcher, "video") == [""]  # the server's default
    assert launcher.form.picker.max_cost.value == "5"
    assert launcher.launch()
    watcher.until(lambda: "Launched" in launcher.message.value)
    ((_, params, _),) = client.submitted
    assert params["providers"] == {"chat": None, "image": None, "video": None}
    assert params["max_cost"] == 5.0


@pytest.mark.parametrize(
    ("max_cost", "message"),
    [
        ("five", "max cost: Input should be a valid number"),
        ("0", "max cost: Input should be greater than 0"),
        ("-1", "max cost: Input should be greater than 0"),
    ],
)
def test_a_bad_max_cost_is_a_message_and_nothing_is_sent(
    client: SubmitClient, max_cost: str, message: str
) -> None:
    launcher = Idea2VideoLauncher(client, idea=IDEA)
    launcher.form.picker.max_cost.value = max_cost
    assert not launcher.launch()
    launcher.flush()
    assert message in launcher.message.value
    assert client.submitted == []


def test_the_provider_note_is_escaped(backend: Backend, client: SubmitClient) -> None:
    backend.server.providers = [
        ProviderStatus(
            role="video", provider="google", model="veo", ready=False, default=True, problem=EVIL
        ),
        ProviderStatus(role="video", provider="procedural", model="procedural", ready=True),
    ]
    launcher = Idea2VideoLauncher(client, idea=IDEA, providers={"video": "procedural"})
    watcher = Watcher(launcher)
    watcher.until(lambda: "not ready" in launcher.form.picker.note.value)
    assert "&lt;img src=x onerror=alert(1)&gt;" in launcher.form.picker.note.value
    assert "<img" not in launcher.form.picker.note.value
    assert launcher.form.picker.dropdowns["video"].value == "procedural"


# -- end to end ------------------------------------------------------------------------


def outcome(message: str) -> bool:
    """Whether a launcher's message tells how the launch ended."""
    return "Launched" in message or "failed" in message


async def test_a_launch_on_a_real_server_shows_the_run_to_completion(
    live_client: Client,
) -> None:
    launcher = Idea2VideoLauncher(live_client, idea=IDEA, **small_params())
    watcher = Watcher(launcher)
    assert await asyncio.to_thread(launcher.wait_providers, TIMEOUT)
    chosen = launcher.form.picker.values()["providers"]
    if launcher.providers is not None:  # a server that lists them: its defaults, chosen
        assert chosen == {"chat": "procedural", "image": "procedural", "video": "procedural"}
    assert launcher.launch()  # on the server's loop thread: it must not block it
    await asyncio.to_thread(watcher.until, lambda: outcome(launcher.message.value), 60)
    assert "Launched idea2video" in launcher.message.value, launcher.message.value
    (run,) = launcher.runs
    assert run.params == {**DEFAULTS, "idea": IDEA, **small_params(), "providers": chosen}
    result = await asyncio.to_thread(run.wait, 90)
    assert result.workflow.state == "completed"
    (progress,) = launcher.progress
    watcher = Watcher(progress)
    await asyncio.to_thread(watcher.until, lambda: ">completed<" in progress.badge.value)
    assert await asyncio.to_thread(progress.wait_drawn, TIMEOUT)
    assert progress.bar.value == 1.0
    assert repr(launcher).startswith("Idea2VideoLauncher(1 run, last: idea2video ")
    assert repr(launcher).endswith(" completed 100%)")
