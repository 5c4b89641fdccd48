"""Following a run when things go wrong: a workflow left ``interrupted``, a server that
stays away, a Ctrl-C whose cancel cannot be sent; and what ``main`` makes of errors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError

import vimax_nb.cli as cli
from vimax_nb.cli import main
from vimax_nb.cli.common import CliError, Interrupts
from vimax_nb.cli.follow import follow
from vimax_nb.client import Run, discovery
from vimax_nb.protocol import WorkflowRecord

from ..widgets.fakes import Backend
from .conftest import Served
from .test_commands import SMALL_PARAMS

BOUND = 10.0  # seconds a call may take before the test calls it hung


def make_run(fake: Backend, state: str) -> Run:
    """Workflow cafe01 of the fake server, 75% done, in ``state``, as a live Run."""
    return fake.run("cafe01", idea="A fox", state=state, progress=0.75)


def bounded(call: Callable[[], int]) -> int:
    """``call()`` on a thread; fails the test if it does not return within BOUND s."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert outcome, f"still running after {BOUND} s"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return cast(int, outcome[0])


@pytest.fixture(autouse=True)
def no_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "_default", None)
    monkeypatch.setattr(discovery, "_private", None)


def args(**values: Any) -> Any:
    return SimpleNamespace(**{"quiet": False, "out": None, "offline_timeout": 30.0, **values})


def test_an_interrupted_workflow_ends_the_watch_with_exit_1(
    fake: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(fake, "interrupted")
    code = bounded(lambda: follow(run.client, run, args(), Interrupts(), cancel_on_interrupt=False))
    assert code == 1
    err = capsys.readouterr().err
    assert "workflow cafe01 was interrupted at 75%: the server stopped or restarted" in err
    assert "`vimax-nb resume cafe01`" in err
    assert "/vimax/api/" not in err  # CLI commands, not REST routes


def test_a_server_offline_too_long_is_given_up_with_exit_1(fake: Backend) -> None:
    run = make_run(fake, "running")
    fake.go_offline()
    with pytest.raises(CliError) as error:
        bounded(
            lambda: follow(
                run.client, run, args(offline_timeout=0), Interrupts(), cancel_on_interrupt=True
            )
        )
    assert error.value.code == 1
    url = fake.client.url
    assert f"no connection to the server at {url} for 0 s: giving up" in str(error.value)
    assert "Workflow cafe01 was running at 75%" in str(error.value)
    assert "may still be running there; `vimax-nb watch cafe01`" in str(error.value)


@pytest.mark.parametrize("how", ["offline", "lost while sending"])
def test_ctrl_c_when_the_cancel_cannot_be_sent_leaves_at_once(
    fake: Backend, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(fake, "running")
    if how == "offline":
        fake.go_offline()
    else:
        fake.server.drop_on_control = True
    interrupts = Interrupts()
    interrupts.flag.set()  # Ctrl-C
    code = bounded(lambda: follow(run.client, run, args(), interrupts, cancel_on_interrupt=True))
    assert code == 130
    err = capsys.readouterr().err
    assert "could not send the cancel for workflow cafe01" in err
    assert "It may still be running on the server" in err
    assert "cancel was asked" not in err
    assert fake.server.workflows["cafe01"].state == "running"


def test_main_keeps_exit_2_for_usage_and_3_for_no_server_at_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def raising(exc: BaseException) -> Callable[[Any, Interrupts], int]:
        def command(_args: Any, _interrupts: Interrupts) -> int:
            raise exc

        return command

    try:
        WorkflowRecord.model_validate({"id": 1})
    except ValidationError as exc:
        bad_reply = exc
    cases: list[tuple[BaseException, str]] = [
        (bad_reply, "the server sent a reply this vimax-nb cannot read"),
        (ValueError("Expecting value: line 1 column 1 (char 0)"), "Expecting value"),
        (ConnectionError("Remote end closed connection"), "lost the connection to the server"),
    ]
    for exc, message in cases:
        monkeypatch.setattr(cli, "_commands", lambda exc=exc: {"ls": raising(exc)})
        assert main(["ls"]) == 1, exc
        err = capsys.readouterr().err
        assert message in err
        assert "no server" not in err
    assert "`serve` exits 0 when Ctrl-C stops it" in cli._parser().format_help()


def test_resume_carries_on_with_a_paused_workflow_and_follows_it(
    env_server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    with env_server.client() as client:
        run = client.idea2video("A paused heron", **SMALL_PARAMS)
        assert run.pause() == "paused"
    assert main(["resume", run.id, "--quiet"]) == 0
    assert capsys.readouterr().out.strip().endswith("final_video.mp4")
    assert main(["resume", run.id]) == 2  # completed: nothing to resume (HTTP 409)
    assert "(HTTP 409)" in capsys.readouterr().err
