"""``vimax-nb watch``, ``ls``, ``agents``, ``serve``; exit codes; the live display."""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from vimax_nb.cli import main
from vimax_nb.cli.commands import finish
from vimax_nb.cli.common import Interrupts
from vimax_nb.cli.display import PlainLines, TerminalView
from vimax_nb.client import discovery
from vimax_nb.protocol import WorkflowRecord

from ..widgets.fakes import Backend, agent
from .conftest import SMALL, Lines, Served, cli, isolated_env

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
    assert err == (
        "vimax-nb: error: no workflow with id 'nosuchworkflow'; `vimax-nb ls` lists them "
        "(HTTP 404)\n"
    )
    assert main(["resume", "nosuchworkflow"]) == 2
    assert "; `vimax-nb ls` lists them (HTTP 404)" in capsys.readouterr().err


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
    if len(records) > 2:  # other tests' workflows: the newest two, and how many more
        assert rows.pop() == (
            f"{len(records) - 2} more not shown: `vimax-nb ls` without -n lists them all"
        )
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
    assert err.startswith(
        f"vimax-nb: error: could not connect to a vimax-nb server: the given url {url}: "
    )
    assert "refused" in err.splitlines()[0].lower()
    assert "Traceback" not in err


def test_a_set_vimax_nb_url_that_fails_exits_3_as_url_does(
    served: Served, fresh: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never a silent private server instead: the URL and the reason, exit 3."""
    closed = f"http://127.0.0.1:{closed_port()}/"
    for url, token, reason in [(closed, "x", "refused"), (served.url, "wrong", "HTTP 403")]:
        monkeypatch.setenv("VIMAX_NB_URL", url)
        monkeypatch.setenv("VIMAX_NB_TOKEN", token)
        for argv in (["run", "idea2video", "A fox"], ["ls"], ["providers"]):
            assert main(argv) == 3, argv
            first, *rest = capsys.readouterr().err.splitlines()
            assert first.startswith(
                f"vimax-nb: error: could not connect to a vimax-nb server: VIMAX_NB_URL={url}: "
            ), first
            assert reason.lower() in first.lower()
            assert "unset them" in rest[-1]
            assert discovery.private_server() is None
            assert not any(fresh.iterdir())
        assert main(["ls", "--url", url, "--token", token]) == 3
        assert reason.lower() in capsys.readouterr().err.splitlines()[0].lower()


@pytest.mark.parametrize("argv", [["ls"], ["agents"], ["watch", "abc123"], ["ls", "--json"]])
def test_read_only_commands_never_start_a_server(
    fresh: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) == 3
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith(f"vimax-nb: error: no vimax-nb server is running for {fresh}: ")
    assert "`vimax-nb serve`" in first
    assert "`vimax-nb run idea2video" in first
    assert "tried:" in rest
    assert not any(fresh.iterdir())  # no vimax-work/, no database
    assert discovery.private_server() is None


def test_ls_without_a_server_in_a_folder_with_workflows_says_serve_shows_them(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fresh / "vimax-work").mkdir()
    (fresh / "vimax-work" / "vimax.sqlite3").write_bytes(b"")
    proc = subprocess.run(
        cli("ls"),
        cwd=fresh,
        env=isolated_env(fresh.parent / "runtime"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "no vimax-nb server is running" in proc.stderr
    assert "this folder's workflows are in vimax-work/: `vimax-nb serve` here shows them" in (
        proc.stderr
    )
    assert sorted(p.name for p in (fresh / "vimax-work").iterdir()) == ["vimax.sqlite3"]


def test_verbose_says_which_server_is_used_first(
    served: Served,
    fresh: Path,
    fake: Backend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["agents", "--json", "--verbose", "--url", fake.server.url]) == 0
    assert capsys.readouterr().err.splitlines()[0] == f"server: {fake.server.url} (--url)"
    discovery.disconnect()

    monkeypatch.setenv("VIMAX_NB_URL", served.url)
    monkeypatch.setenv("VIMAX_NB_TOKEN", served.token)
    assert main(["ls", "--json", "--verbose"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == f"server: {served.url} (VIMAX_NB_URL)"
    monkeypatch.delenv("VIMAX_NB_URL")
    monkeypatch.delenv("VIMAX_NB_TOKEN")

    monkeypatch.chdir(served.folder)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(served.runtime))
    assert main(["ls", "--json", "--verbose"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"server: {served.url} (served folder {served.folder.resolve()})"
    )
    assert main(["ls", "--json"]) == 0  # without --verbose: not a word
    assert capsys.readouterr().err == ""

    monkeypatch.chdir(fresh)
    assert main(["providers", "--json", "--verbose"]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert re.fullmatch(
        r"server: http://127\.0\.0\.1:\d+/ \(private server started for this command\)", first
    ), first


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


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from vimax_nb._version import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"vimax-nb {__version__}\n"


def test_run_help_says_the_limits_the_server_enforces() -> None:
    from vimax_nb.cli import _parser
    from vimax_nb.pipelines.params import MAX_SCENES

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(commands.choices["run"].format_help().split())
    for phrase in [
        f"most scenes to make, 1-{MAX_SCENES}",
        "shots per scene, 1-24",
        "frames per second, 1-60",
        "seconds per shot, more than 0 and up to 30",
        "up to 3840x2160",
        "at most 20,000 characters",
        "put -- before it: vimax-nb run idea2video -- '@home a cat naps'",
        "visual style in free words",
        "offline renderer has looks for noir, pixel art, watercolor",
    ]:
        assert phrase in text, phrase


def time_wait_port() -> int:
    """A port of 127.0.0.1 whose only use is a connection in TIME_WAIT (its server side
    closed first), as after a server was stopped (a Jupyter server's socket has
    SO_REUSEADDR, as this listener)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server's side closes first: it is the one in TIME_WAIT
        client.recv(1)
        client.close()
    with socket.socket() as probe, pytest.raises(OSError, match="in use"):  # no SO_REUSEADDR
        probe.bind(("127.0.0.1", port))
    return port


def test_serve_takes_a_port_in_time_wait_and_says_when_it_falls_back(
    tmp_path: Path,
) -> None:
    from vimax_nb.cli.serve import _port

    port = time_wait_port()
    assert _port("127.0.0.1", port) == port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert _port("127.0.0.1", taken) != taken
        process = subprocess.Popen(
            cli("serve", "--port", str(taken)),
            cwd=tmp_path,
            env=isolated_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        lines = Lines(process)
        try:
            other = lines.until(rf"^port {taken} is in use; serving on (\d+)$").group(1)
            assert lines.until(r"^  url: +(\S+)$").group(1) == f"http://127.0.0.1:{other}/"
            lines.until(r"^Ctrl-C stops it\.$")
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(30) == 0


def test_server_messages_name_cli_commands_not_rest_routes() -> None:
    from vimax_nb.cli.common import in_cli_words

    assert in_cli_words("GET /vimax/api/agents lists them; see GET /vimax/api/providers.") == (
        "`vimax-nb agents` lists them; see `vimax-nb providers`."
    )
    # a route with more to it is left as it is
    assert in_cli_words("GET /vimax/api/workflows/x/events") == "GET /vimax/api/workflows/x/events"


def test_a_private_server_that_cannot_start_says_why_on_the_first_line(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process holds this folder's database (and has no runtime file): the
    decisive reason comes first, the places looked in after it."""
    lock = fresh / "vimax-work" / "vimax.sqlite3.lock"
    lock.parent.mkdir()
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(str(os.getpid()))
        held.flush()
        assert main(["run", "idea2video", "A fox", *SMALL]) == 3
    first, also, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith(
        "vimax-nb: error: could not connect to a vimax-nb server: a private jupyter server"
    ), first
    assert "already open" in first
    assert also == "also tried:"
    assert rest[0] == "  - VIMAX_NB_URL: not set"
