"""Providers and cost in ``vimax-nb``: ``run --chat/--image/--video/--max-cost/--providers``,
``ls --cost``, ``providers``, and the spend and activity lines of the follow view.

Most tests drive the CLI in-process against the fake server (``--url``); a submission is
recorded by a stand-in for ``Client.submit`` (the fake's REST cannot create workflows).
The last tests use the real server of the package (``served``)."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from vimax_nb.cli import main
from vimax_nb.cli.display import PlainLines, TerminalView
from vimax_nb.client import Client, Run, discovery
from vimax_nb.protocol import CostSummary, WorkflowRecord, WorkflowState

from ..client.fake_server import workflow_record
from ..client.test_spend import NO_KEY, PROVIDERS
from ..widgets.fakes import Backend
from .conftest import SMALL, Served
from .test_commands import render

NOT_READY = f"the video provider 'google' is not ready: {NO_KEY}"
SPENT = CostSummary(total=0.42, calls=3, cached_calls=1, max_cost=2.5)


class Submissions:
    """Stands in for ``Client.submit``: records ``(kind, params)`` and makes the workflow
    on the fake server, failed with ``error`` (a provider's problem) and ``cost``."""

    def __init__(self, backend: Backend) -> None:
        self.server = backend.server
        self.made: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, client: Client, kind: str, **params: Any) -> Run:
        with self.lock:
            self.made.append((kind, params))
            workflow_id = f"f{len(self.made):05d}"
        self.server.workflows[workflow_id] = workflow_record(workflow_id).model_copy(
            update={
                "kind": kind,
                "params": params,
                "state": WorkflowState.failed,
                "progress": 0.2,
                "message": "failed",
                "error": {"message": NOT_READY},
                "cost": SPENT,
            }
        )
        return client.run(workflow_id)


@pytest.fixture
def submissions(fake: Backend, monkeypatch: pytest.MonkeyPatch, fresh: Path) -> Submissions:
    made = Submissions(fake)
    monkeypatch.setattr(
        Client, "submit", lambda client, kind, **params: made(client, kind, **params)
    )
    return made


def run_cli(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exited:  # argparse's own errors
        return int(exited.code or 0)


# -- run ---------------------------------------------------------------------------------


def test_the_provider_and_cost_flags_reach_the_submit_params(
    fake: Backend, submissions: Submissions, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(
        "run", "idea2video", "A fox", "--chat", "openai", "--video", "google",
        "--max-cost", "2.5", "--url", fake.server.url,
    )  # fmt: skip
    captured = capsys.readouterr()
    ((kind, params),) = submissions.made
    assert kind == "idea2video"
    assert params["providers"] == {"chat": "openai", "video": "google"}  # image: the default
    assert params["max_cost"] == 2.5
    assert params["idea"] == "A fox"
    # the run failed on a provider that is not ready: the CLI says so, and what was spent
    assert code == 1
    assert f"vimax-nb: workflow f00001 failed: {NOT_READY}\n" in captured.err
    assert "vimax-nb: $0.42 spent of $2.50 max · 3 calls (1 cached)\n" in captured.err
    assert "Traceback" not in captured.err


def test_a_request_takes_the_flags_too_and_without_them_sends_none(
    fake: Backend, submissions: Submissions, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.server.providers = PROVIDERS  # checked: stub is a ready image provider
    url = fake.server.url
    run_cli("run", "request", "a video about a fox, seed 3", "--image", "stub", "--url", url)
    run_cli("run", "idea2video", "A fox", "--url", url)
    assert "vimax-nb: error:" not in capsys.readouterr().err
    (_, planned), (_, plain) = submissions.made
    assert planned["providers"] == {"chat": None, "image": "stub", "video": None}
    assert planned["max_cost"] is None
    assert (planned["idea"], planned["seed"]) == ("A fox", 3)
    assert "providers" not in plain  # the server's defaults, as an older server expects
    assert "max_cost" not in plain


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--video", "google"], "--video google: the video provider 'google' of the server at"),
        (["--video", "google"], f"is not ready: {NO_KEY}"),
        (["--chat", "gemini"], "--chat gemini: the server at"),
        (["--chat", "gemini"], "has no chat provider 'gemini' (it has: procedural, openai;"),
        (["--image", "openai"], "is not ready: no OpenAI API key: set OPENAI_API_KEY"),
    ],
)
def test_a_provider_the_server_lacks_or_is_not_ready_is_refused_before_the_run(
    fake: Backend,
    submissions: Submissions,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    fake.server.providers = PROVIDERS
    code = run_cli("run", "idea2video", "A fox", *flags, "--url", fake.server.url)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert submissions.made == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--chat", "GPT"], "providers.chat: String should match pattern"),
        (["--max-cost", "0"], "max_cost: Input should be greater than 0"),
        (["--max-cost", "lots"], "argument --max-cost: invalid float value: 'lots'"),
    ],
)
def test_bad_provider_names_and_costs_exit_2_and_start_nothing(
    fresh: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert run_cli("run", "idea2video", "A fox", *flags) == 2
    assert message in capsys.readouterr().err
    assert not (fresh / "vimax-work").exists()
    assert discovery.private_server() is None


def test_providers_file_with_a_running_server_is_refused_and_says_what_to_do(
    fake: Backend, submissions: Submissions, capsys: pytest.CaptureFixture[str], fresh: Path
) -> None:
    providers = fresh / "providers.yaml"
    providers.write_text("video:\n  provider: procedural\n")
    url = fake.server.url
    code = run_cli("run", "idea2video", "A fox", "--providers", "providers.yaml", "--url", url)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(
        f"vimax-nb: error: --providers providers.yaml: the server at {url} (the given url "
        f"{url}) is already running, and a running server's providers cannot be changed."
    )
    assert "`vimax-nb serve --providers providers.yaml`" in err
    assert "choose among that server's providers with --chat/--image/--video" in err
    assert submissions.made == []  # nothing was started


@pytest.mark.parametrize("command", ["run", "providers"])
def test_a_missing_or_unreadable_providers_file_is_an_error_before_anything_starts(
    fresh: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    extra = ["idea2video", "A fox"] if command == "run" else []
    assert run_cli(command, *extra, "--providers", "nowhere.yaml") == 2
    err = capsys.readouterr().err
    assert err == (
        "vimax-nb: error: --providers nowhere.yaml: cannot read it: No such file or directory\n"
    )
    (fresh / "folder.yaml").mkdir()
    assert run_cli(command, *extra, "--providers", "folder.yaml") == 2
    assert "--providers folder.yaml: cannot read it: not a file" in capsys.readouterr().err
    assert not (fresh / "vimax-work").exists()
    assert discovery.private_server() is None


def test_the_providers_file_goes_to_the_private_server_by_its_absolute_path(
    fresh: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[list[str]] = []

    class NotStarted(discovery.PrivateServer):
        def start(self, timeout: float = 10.0) -> Client:
            started.append(list(self.server_args))
            raise RuntimeError("not started by this test")

    monkeypatch.setattr(discovery, "PrivateServer", NotStarted)
    (fresh / "conf").mkdir()
    (fresh / "conf" / "providers.toml").write_text('[video]\nprovider = "procedural"\n')
    assert run_cli("run", "idea2video", "A fox", "--providers", "conf/providers.toml") == 3
    assert started == [[f"--VimaxApp.providers_file={fresh.resolve() / 'conf/providers.toml'}"]]
    assert "not started by this test" in capsys.readouterr().err


# -- ls --cost, providers ----------------------------------------------------------------


def test_ls_cost_adds_what_each_workflow_spent_and_the_total(
    fake: Backend, fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for workflow_id, created, total in [("aaa1", "01", 1.25), ("bbb2", "02", 0.0)]:
        fake.server.workflows[workflow_id] = workflow_record(workflow_id, "completed", 1.0)
        fake.server.workflows[workflow_id] = fake.server.workflows[workflow_id].model_copy(
            update={"created_at": f"2030-01-{created}T00:00:00Z", "cost": CostSummary(total=total)}
        )
    assert main(["ls", "--cost", "--url", fake.server.url]) == 0
    header, first, second, total = capsys.readouterr().out.splitlines()
    assert header.split() == ["id", "kind", "state", "progress", "spent", "created", "subject"]
    assert first.split()[:5] == ["bbb2", "idea2video", "completed", "100%", "$0.00"]
    assert second.split()[:5] == ["aaa1", "idea2video", "completed", "100%", "$1.25"]
    assert total == "total spent: $1.25 (2 workflows)"

    assert main(["ls", "--url", fake.server.url]) == 0  # without --cost: as before
    assert "spent" not in capsys.readouterr().out


def test_providers_lists_each_role_with_readiness_and_problem(
    fake: Backend, fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fake.server.url
    assert main(["providers", "--url", url]) == 1  # a server without the endpoint
    assert capsys.readouterr().err == (
        f"vimax-nb: error: the server at {url} does not list its providers (it is an older "
        "vimax-nb): its configuration says which it uses\n"
    )
    fake.server.providers = list(reversed(PROVIDERS))
    assert main(["providers", "--url", url]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["role", "provider", "model", "default", "status"]
    assert [row.split()[:2] for row in rows] == [  # by role: chat, image, video
        ["chat", "openai"],
        ["chat", "procedural"],
        ["image", "stub"],
        ["image", "openai"],
        ["image", "procedural"],
        ["video", "google"],
        ["video", "procedural"],
    ]
    google = " ".join(rows[5].split())
    assert google == f"video google veo-3.0-generate-001 * not ready: {NO_KEY}"
    assert rows[0].split() == ["chat", "openai", "gpt-4o-mini", "*", "ready"]

    assert main(["providers", "--json", "--url", url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["provider"] for p in listed if p["role"] == "video"] == ["google", "procedural"]


# -- the follow view ---------------------------------------------------------------------


def test_the_live_view_shows_the_spend_and_what_tasks_wait_on(fake: Backend) -> None:
    run = fake.run("abc123", idea="A fox", params={"idea": "A fox", "max_cost": 5.0})
    view = TerminalView(run)
    assert "$0.00 spent of $5.00 max" in render(view)
    clip = {"event": "task_activity", "task": "scene/0/shot/2/clip"}
    fake.send(run, details={**clip, "activity": "waiting on veo-3.0-generate-001 (42 s)"})
    fake.send(run, details={**clip, "task": "story", "activity": "[bold]not markup[/bold]"})
    fake.send(run, details={"event": "task_activity", "task": "portrait/0", "cost": 1.5})
    text = render(view)
    assert "$1.50 spent of $5.00 max" in text
    assert re.search(r"^⧗ shot 3 clip: waiting on veo-3\.0-generate-001 \(42 s\)$", text, re.M)
    assert "⧗ story: [bold]not markup[/bold]" in text
    fake.send(run, details={**clip, "event": "task_completed"})
    text = render(view)
    assert "shot 3 clip" not in text
    assert "⧗ story" in text
    fake.send(run, state="completed", progress=1.0)
    assert "⧗" not in render(view)


def test_plain_lines_say_when_a_task_starts_waiting_and_when_the_spend_changes(
    fake: Backend,
) -> None:
    run = fake.run("abc123", idea="A fox")
    out = io.StringIO()
    lines = PlainLines(run, Console(file=out, width=200))
    lines.update()
    clip = {"event": "task_activity", "task": "scene/0/shot/2/clip"}
    fake.send(run, details={**clip, "activity": "waiting on veo-3.0-generate-001 (0 s)"})
    lines.update()
    fake.send(run, details={**clip, "activity": "waiting on veo-3.0-generate-001 (5 s)"})
    lines.update()  # the same wait, longer: no line
    fake.send(run, details={**clip, "activity": "", "cost": 0.5})
    lines.update()
    fake.send(run, details={**clip, "activity": "waiting on veo-3.0-generate-001 (0 s)"})
    lines.update()  # a new wait: a line
    assert out.getvalue().splitlines() == [
        "[                    ]   0%  running",
        "  ⧗ shot 3 clip: waiting on veo-3.0-generate-001 (0 s)",
        "  $0.50 spent",
        "  ⧗ shot 3 clip: waiting on veo-3.0-generate-001 (0 s)",
    ]


# -- on the real server (needs GET /vimax/api/providers and c.VimaxApp.providers_file) ----


def test_providers_on_the_real_server_lists_procedural_ready_for_each_role(
    env_server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["providers", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    for role in ("chat", "image", "video"):
        (procedural,) = [p for p in listed if p["role"] == role and p["provider"] == "procedural"]
        assert procedural["ready"], procedural
    defaults = {p["role"] for p in listed if p["default"]}
    assert defaults == {"chat", "image", "video"}


def test_run_with_flags_and_ls_cost_on_the_real_server(
    env_server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "idea2video", "A fox counts pennies", "--quiet", *SMALL]
    flags = ["--chat", "procedural", "--image", "procedural", "--video", "procedural"]
    assert main([*argv, *flags, "--max-cost", "3"]) == 0, capsys.readouterr()
    capsys.readouterr()
    assert main(["ls", "--json", "-n", "1"]) == 0
    (record,) = [WorkflowRecord.model_validate(r) for r in json.loads(capsys.readouterr().out)]
    assert record.params["providers"] == dict.fromkeys(("chat", "image", "video"), "procedural")
    assert record.params["max_cost"] == 3.0
    assert record.cost.total == 0.0  # procedural: free
    assert main(["ls", "--cost", "-n", "1"]) == 0
    header, row, total, *more = capsys.readouterr().out.splitlines()
    assert all(
        line.endswith("more not shown: `vimax-nb ls` without -n lists them all") for line in more
    )
    assert "spent" in header.split()
    assert row.split()[:5] == [record.id, "idea2video", "completed", "100%", "$0.00"]
    assert total == "total spent: $0.00 (1 workflow)"


def test_a_private_server_takes_the_providers_file(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fresh / "providers.yaml").write_text("video:\n  provider: procedural\nmax_cost: 4\n")
    assert main(["providers", "--json", "--providers", "providers.yaml"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {p["role"] for p in listed if p["provider"] == "procedural" and p["ready"]} == {
        "chat",
        "image",
        "video",
    }
    assert discovery.private_server() is None  # stopped when the command ended


def test_after_dashes_an_idea_may_begin_with_an_at_sign(
    fake: Backend, submissions: Submissions, capsys: pytest.CaptureFixture[str]
) -> None:
    """``@FILE`` reads a file; after ``--`` the text is taken as it is."""
    assert run_cli("run", "idea2video", "--url", fake.server.url, "--", "@home a cat") == 1
    assert run_cli("run", "script2video", "--url", fake.server.url, "--", "@INT. ROOM") == 1
    assert [p.get("idea") or p.get("script") for _, p in submissions.made] == [
        "@home a cat",
        "@INT. ROOM",
    ]
    capsys.readouterr()
    # without --: a file, and there is none
    assert run_cli("run", "idea2video", "@home a cat", "--url", fake.server.url) == 2
    err = capsys.readouterr().err
    assert "cannot read the idea file home a cat: there is no such file" in err
    assert len(submissions.made) == 2
