"""``vimax-nb run`` as a user runs it: a video, bad input, Ctrl-C, which server is used."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from vimax_nb.cli import main
from vimax_nb.client import discovery
from vimax_nb.pipelines.editing import probe_video

from .conftest import SMALL, Lines, Served, cli, isolated_env


def workflow_id(out: str) -> str:
    match = re.search(r"^workflow ([0-9a-f]+) \(", out, re.MULTILINE)
    assert match, out
    return match.group(1)


def test_run_idea2video_makes_an_mp4_and_says_where(
    env_server: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "videos"
    code = main(["run", "idea2video", "A fox learns to fly", "--out", str(out_dir), *SMALL])
    out = capsys.readouterr().out
    assert code == 0, out
    wid = workflow_id(out)
    assert f"workflow {wid} (idea2video) on {env_server.url}" in out
    assert f"server: VIMAX_NB_URL={env_server.url}" in out
    assert "100%  completed" in out
    assert re.search(r"^\[#*\s*\]\s+\d+%  running  story", out, re.MULTILINE), out
    # the server is not on this machine as far as the CLI knows: the video is downloaded
    video = out_dir / wid / "final_video.mp4"
    assert f"{video}: 160x96, 12 frames, 2.0 s" in out
    info = probe_video(video)
    assert (info.frames, info.width, info.height, info.codec) == (12, 160, 96, "h264")
    with env_server.client() as client:
        assert client.workflow(wid).state == "completed"


def test_run_script2video_reads_a_script_file(
    env_server: Served, fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = fresh / "scene.txt"
    script.write_text("INT. KITCHEN - NIGHT\nANA: Is anyone there?\nBEN: Only me.\n")
    code = main(["run", "script2video", f"@{script}", "--quiet", *SMALL])
    assert code == 0
    [line] = capsys.readouterr().out.splitlines()
    # without --out, a remote server's video lands in ./vimax-work/<id>/
    assert re.fullmatch(r"vimax-work/[0-9a-f]+/final_video\.mp4", line), line
    assert probe_video(fresh / line).frames == 12


def test_run_request_turns_plain_words_into_a_plan(
    env_server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    request = "a two-shot pixel art video about a robot who paints, 160x96, seed 3"
    code = main(["run", "request", request, "--fps", "4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "plan:" in out
    assert "pixel art" in out
    assert ": 160x96, " in out


def test_run_sends_its_priority(env_server: Served, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["run", "idea2video", "A fox learns to fly", *SMALL, "--shots", "1", "--priority", "-3"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    with env_server.client() as client:
        assert client.workflow(workflow_id(out)).priority == -3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "idea2video", "x", "--shots", "0"], "shots_per_scene: Input should be greater"),
        (["run", "idea2video", "x", "--size", "big"], "--size 'big': give WIDTHxHEIGHT"),
        (["run", "idea2video", "x", "--size", "161x96"], "width: Input should be a multiple of 2"),
        (["run", "idea2video", "   "], "idea: String should have at least 1 character"),
        (["run", "script2video", "@/no/such/file"], "cannot read the script"),
        (["run", "request", "  "], "the request is empty"),
        (["run", "idea2video", "x", "--chat", "GPT"], "providers.chat: String should match"),
        (["run", "sketch2video", "x"], "invalid choice: 'sketch2video'"),
        (
            ["run", "idea2video", "x", "--priority", "11"],
            "argument --priority: give a whole number from -10 to 10, higher runs first (got '11')",
        ),
        (["run", "idea2video", "x", "--priority", "high"], "-10 to 10, higher runs first"),
        (["run", "idea2video", "x", "--priority", "1.5"], "(got '1.5')"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_starts_nothing(
    fresh: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    try:
        code = main(argv)
    except SystemExit as exited:  # argparse's own errors
        code = int(exited.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not (fresh / "vimax-work").exists()  # no server was started
    assert discovery.private_server() is None


def test_ctrl_c_cancels_the_run_and_exits_130(served: Served, tmp_path: Path) -> None:
    env = isolated_env(served.runtime)
    env.update(VIMAX_NB_URL=served.url, VIMAX_NB_TOKEN=served.token)
    big = ["--size", "1280x720", "--shots", "8", "--seconds", "3"]
    process = subprocess.Popen(
        cli("run", "idea2video", "A long voyage", *big),
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = Lines(process)
    wid = lines.until(r"^workflow ([0-9a-f]+) \(idea2video\)").group(1)
    lines.until(r"%  running")
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 130
    rest = "\n".join(lines.rest())
    assert f"vimax-nb: canceling workflow {wid}..." in rest
    assert f"vimax-nb: workflow {wid} canceled (Ctrl-C)" in rest
    assert "Traceback" not in rest
    with served.client() as client:
        assert client.workflow(wid).state == "canceled"


def test_without_a_server_a_private_one_is_started_here_and_stopped(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "idea2video", "A fox learns to fly", *SMALL])
    out = capsys.readouterr().out
    assert code == 0, out
    wid = workflow_id(out)
    assert "server: a private jupyter server on http://127.0.0.1:" in out
    assert f"(root {fresh.resolve()})" in out
    # the server's own file, shown relative to this folder, as the README promises
    assert f"vimax-work/{wid}/final_video.mp4: 160x96, 12 frames, 2.0 s" in out
    assert probe_video(fresh / "vimax-work" / wid / "final_video.mp4").frames == 12
    assert (fresh / "vimax-work" / "vimax.sqlite3").is_file()
    assert discovery.private_server() is None  # stopped when the command ended


def test_a_second_command_in_a_served_folder_uses_that_server(
    served: Served,
    fresh: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`vimax-nb serve` holds the folder's database: a command there must use it (a second
    server could not open the database)."""
    monkeypatch.chdir(served.folder)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(served.runtime))
    code = main(["run", "idea2video", "Two servers, one folder", *SMALL])
    out = capsys.readouterr().out
    assert code == 0, out
    wid = workflow_id(out)
    assert f"server: the Jupyter server of pid {served.pid} serving {served.folder}" in out
    # the server is local: its own file is given, nothing is copied
    assert f"vimax-work/{wid}/final_video.mp4: 160x96" in out
    assert (served.folder / "vimax-work" / wid / "final_video.mp4").is_file()
    assert discovery.private_server() is None
