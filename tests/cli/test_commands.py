"""``vimax-nb watch``, ``ls``, ``agents``, ``serve``; exit codes; the live display."""

from __future__ import annotations

import io
import json
import os
import re
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from vimax_nb.cli import main
from vimax_nb.cli.commands import finish
from vimax_nb.cli.common import Interrupts
from vimax_nb.cli.display import PlainLines, TerminalView
from vimax_nb.protocol import WorkflowRecord

from ..widgets.fakes import Backend, agent
from .conftest import Served

SMALL_PARAMS = {"width": 160, "height": 96, "fps": 6, "seconds_per_shot": 1, "shots_per_scene": 2}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_watch_follows_a_workflow_to_its_end(
    env_server: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with env_server.client() as client:
        wid = client.idea2video("A heron waits", **SMALL_PARAMS).id
    code = main(["watch", wid, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"workflow {wid} (idea2video) on {env_server.url}" in out
    assert "Ctrl-C stops watching" in out
    assert "100%  completed" in out
    assert f"{tmp_path / wid / 'final_video.mp4'}: 160x96, 12 frames, 2.0 s" in out

    # a finished workflow: its outcome at once
    assert main(["watch", wid, "--quiet", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / wid / "final_video.mp4")


def test_watch_exits_with_the_workflows_outcome(
    env_server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    big = {"width": 1280, "height": 720, "shots_per_scene": 8, "seconds_per_shot": 3}
    with env_server.client() as client:
        run = client.idea2video("Canceled before it ends", **big)
        assert run.cancel() == "canceled"
    assert main(["watch", run.id]) == 130
    assert f"vimax-nb: workflow {run.id} was canceled" in capsys.readouterr().err

    assert main(["watch", "nosuchworkflow"]) == 2
    err = capsys.readouterr().err
    assert "nosuchworkflow" in err
    assert "(HTTP 404)" in err


def test_a_failed_workflow_exits_1_with_its_error(
    fake: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    error = {"message": "the painter ran out of paint"}
    run = fake.run("f00d", state="failed", progress=0.4, message="failed", error=error)
    code = finish(fake.client, run, SimpleNamespace(out=None, quiet=False))
    assert code == 1
    assert capsys.readouterr().err == (
        "vimax-nb: workflow f00d failed: the painter ran out of paint\n"
    )


def test_ls_lists_workflows_newest_first(
    env_server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    with env_server.client() as client:
        first = client.idea2video("The first of two", **SMALL_PARAMS)
        second = client.idea2video("The second of two", **SMALL_PARAMS)
        first.wait(60)
        second.wait(60)
    assert main(["ls", "--json"]) == 0
    records = [WorkflowRecord.model_validate(r) for r in json.loads(capsys.readouterr().out)]
    ids = [r.id for r in records]
    assert ids.index(second.id) < ids.index(first.id)
    assert {r.state for r in records if r.id in (first.id, second.id)} == {"completed"}

    assert main(["ls", "-n", "2"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["id", "kind", "state", "progress", "created", "subject"]
    assert len(rows) == 2
    assert rows[0].split()[:4] == [second.id, "idea2video", "completed", "100%"]
    assert rows[0].rstrip().endswith("The second of two")


def test_agents_shows_every_agent(env_server: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "--json"]) == 0
    agents = {a["name"]: a for a in json.loads(capsys.readouterr().out)}
    assert {"screenwriter", "frame_painter", "editor"} <= set(agents)
    assert "paint_frames" in agents["frame_painter"]["capabilities"]

    assert main(["agents"]) == 0
    executor, header, *rows = capsys.readouterr().out.splitlines()
    assert executor == "executor: local · 2 threads"  # the server's max_concurrent_tasks
    assert header.split() == ["name", "status", "capabilities", "done/failed", "avg", "ms"]
    painter = next(row for row in rows if row.startswith("frame_painter "))
    assert "paint_frames" in painter
    assert painter.split()[1] in {"idle", "busy"}


def test_agents_says_where_tasks_run(fake: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    dask = {
        "kind": "dask",
        "workers": 2,
        "threads": 4,
        "address": "tcp://127.0.0.1:8786",
        "dashboard": "http://127.0.0.1:8787/status",
    }
    fake.agents(agent("editor", "idle", "edit"), executor=dask)
    assert main(["agents", "--url", fake.server.url]) == 0
    executor, header, editor = capsys.readouterr().out.splitlines()
    assert executor == (
        "executor: dask · 2 workers · 4 threads · dashboard http://127.0.0.1:8787/status"
    )
    assert header.split()[0] == "name"
    assert editor.split()[:2] == ["editor", "idle"]

    lost = "the Dask scheduler at tcp://127.0.0.1:8786 cannot be reached"
    fake.agents(agent("editor"), executor={"kind": "dask", "problem": lost})
    assert main(["agents", "--url", fake.server.url]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"executor: dask · {lost}"

    # not an http(s) URL, markup, terminal controls: plain text, never a link or markup
    odd = {**dask, "dashboard": "javascript:alert(1)", "problem": "[bold]boom[/bold]\x1b[31m"}
    fake.agents(agent("editor"), executor=odd)
    assert main(["agents", "--url", fake.server.url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "executor: dask · 2 workers · 4 threads · dashboard javascript:alert(1) · "
        "[bold]boom[/bold]\\x1b[31m"
    )
    assert "\x1b" not in out

    # --json is the agents alone, as before; a server that does not say: no line
    assert main(["agents", "--json", "--url", fake.server.url]) == 0
    assert [a["name"] for a in json.loads(capsys.readouterr().out)] == ["editor"]
    fake.agents(agent("editor"))
    assert main(["agents", "--url", fake.server.url]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[0] == "name"


def test_no_server_exits_3_and_says_what_was_tried(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    assert main(["ls", "--url", url]) == 3
    err = capsys.readouterr().err
    assert err.startswith("vimax-nb: error: could not connect to a vimax-nb server; tried:\n")
    assert f"the given url {url}: " in err
    assert "Traceback" not in err


def test_serve_will_not_start_a_second_server_for_a_folder(
    served: Served,
    fresh: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(served.runtime))
    assert main(["serve", "--dir", str(served.folder), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert f"is already served by pid {served.pid} at {served.url}" in err


# -- pieces ------------------------------------------------------------------------------


def render(renderable: Any) -> str:
    console = Console(record=True, width=100, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_the_live_view_shows_each_stage_with_its_counts(fake: Backend) -> None:
    run = fake.run("abc123", idea="A fox")
    message = "painting frame 3 of 8 [bold]not markup[/bold]"
    counts = (("story", 1, 1), ("frames", 3, 8), ("clips", 0, 8))
    fake.stages(run, "frames", *counts, progress=0.45, message=message)
    view = TerminalView(run)
    text = render(view)
    assert "vimax-nb idea2video 'A fox'  abc123  running" in text
    assert " 45% " in text
    assert re.search(r"^✓ story +1/1 done", text, re.MULTILINE), text
    assert re.search(r"^\S frames +3/8 running", text, re.MULTILINE), text  # a spinner
    assert re.search(r"^· clips +0/8 pending", text, re.MULTILINE), text
    assert "> painting frame 3 of 8 [bold]not markup[/bold]" in text  # escaped
    assert "reconnecting" not in text

    fake.stages(run, "frames", *counts, state="paused", progress=0.45)
    fake.go_offline()
    text = render(view)
    assert "abc123  paused" in text
    assert re.search(r"^‖ frames +3/8 paused", text, re.MULTILINE), text
    assert "(connection offline, reconnecting)" in text
    fake.client.close()  # for good: the run is shown as it was last heard of
    text = render(view)
    assert "abc123  paused  (connection closed)" in text
    assert "reconnecting" not in text


def test_plain_lines_say_each_change_of_state_or_stage_once(fake: Backend) -> None:
    run = fake.run("abc123", idea="A fox")
    out = io.StringIO()
    lines = PlainLines(run, Console(file=out, width=200))
    lines.update()
    counts = (("story", 1, 1), ("frames", 3, 8))
    fake.stages(run, "frames", *counts, progress=0.45, message="frames: 3 of 8")
    lines.update()
    fake.stages(run, "frames", *counts, progress=0.5, message="frames: 4 of 8")
    lines.update()  # the same state and stage: no line
    fake.stages(run, "frames", *counts, state="paused", progress=0.5, message="paused by you")
    lines.update()
    assert out.getvalue().splitlines() == [
        "[                    ]   0%  running",
        "[#########           ]  45%  running  frames 3/8",
        "[##########          ]  50%  paused  paused by you",
    ]


def test_a_second_ctrl_c_leaves_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt):  # before catch(): an ordinary KeyboardInterrupt
        interrupts._handle(2, None)
    interrupts = Interrupts()
    interrupts.catch()
    hooks: list[str] = []
    interrupts.on_hard_exit.append(lambda: hooks.append("cursor"))
    interrupts._handle(2, None)
    assert interrupts.flag.is_set()
    assert interrupts.wake.is_set()

    def exit_now(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", exit_now)
    with pytest.raises(SystemExit) as exited:
        interrupts._handle(2, None)
    assert exited.value.code == 130
    assert hooks == ["cursor"]
