"""``vimax-nb run`` as a user runs it: a video, bad input, Ctrl-C, which server is used."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("command", ["run", "watch", "resume"])
def test_an_out_that_cannot_be_a_folder_exits_2_at_once(
    fresh: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """Checked before anything is submitted (or a server started), not after the run."""
    (fresh / "notes.txt").write_text("a file")
    argv = ["run", "idea2video", "A fox"] if command == "run" else [command, "abc123"]
    for out, problem in [
        ("notes.txt", "--out notes.txt: it is a file, not a folder"),
        ("notes.txt/videos", f"--out notes.txt/videos: {fresh / 'notes.txt'} is a file"),
    ]:
        assert main([*argv, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"vimax-nb: error: {problem}"), err
        assert sorted(p.name for p in fresh.iterdir()) == ["notes.txt"]
        assert discovery.private_server() is None


def test_an_out_folder_this_user_cannot_write_in_exits_2(
    fresh: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (fresh / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: Path(p).name != "locked" and real_access(p, mode)
    )
    assert main(["run", "idea2video", "A fox", "--out", "locked"]) == 2
    assert "--out locked: this user cannot write in that folder" in capsys.readouterr().err
    assert main(["run", "idea2video", "A fox", "--out", "locked/new"]) == 2
    err = capsys.readouterr().err
    assert f"--out locked/new: it cannot be made: this user cannot write in {fresh}/locked" in err
    assert sorted(p.name for p in fresh.iterdir()) == ["locked"]


def test_a_script_file_that_is_not_readable_text_exits_2_in_plain_words(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fresh / "latin1.txt").write_bytes("INT. CAFÉ - DAY\n".encode("latin-1"))
    (fresh / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (fresh / "folder").mkdir()
    for name, problem in [
        ("latin1.txt", "it is not UTF-8 text (see byte 8); save it as UTF-8"),
        ("clip.mp4", "it is not a text file (it holds binary data)"),
        ("folder", "it is a folder, not a file"),
        ("missing.txt", "there is no such file"),
    ]:
        assert main(["run", "script2video", f"@{name}"]) == 2
        err = capsys.readouterr().err
        assert err == f"vimax-nb: error: cannot read the script file {name}: {problem}\n"
        assert "codec" not in err
    assert not (fresh / "vimax-work").exists()
    assert discovery.private_server() is None
