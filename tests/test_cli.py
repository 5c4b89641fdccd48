"""The ``vimax-nb`` command as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vimax_nb.cli import main
from vimax_nb.pipelines.editing import probe_video
from vimax_nb.store import Store

SMALL = ["--size", "160x96", "--fps", "6", "--seconds", "1", "--shots", "2"]


def test_run_idea2video_makes_an_mp4_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "idea2video", "A fox learns to fly", "--out", str(tmp_path), *SMALL])
    out = capsys.readouterr().out
    assert code == 0
    [video] = tmp_path.glob("*/final_video.mp4")
    assert f"{video}: 160x96, 12 frames, 2.0 s" in out
    assert "100%  completed" in out
    assert probe_video(video).frames == 12


def test_run_script2video_reads_a_script_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "scene.txt"
    script.write_text("INT. KITCHEN - NIGHT\nANA: Is anyone there?\nBEN: Only me.\n")
    code = main(["run", "script2video", f"@{script}", "--out", str(tmp_path / "out"), "--quiet",
                 *SMALL])  # fmt: skip
    assert code == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.endswith("final_video.mp4")
    assert probe_video(Path(line)).frames == 12


def test_run_request_turns_plain_words_into_a_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = "a two-shot pixel art video about a robot who paints, 160x96, seed 3"
    code = main(["run", "request", request, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "plan:" in out
    assert "pixel art" in out


async def test_a_run_leaves_a_durable_event_log(tmp_path: Path) -> None:
    from vimax_nb.cli import run_workflow

    params = {"idea": "One. Two.", "width": 160, "height": 96, "fps": 6, "shots_per_scene": 1}
    done = await run_workflow("idea2video", params, tmp_path, quiet=True)
    assert done.state == "completed"
    store = await Store.open(tmp_path / "vimax.sqlite3")
    try:
        events = await store.events.read(f"workflow:{done.id}")
    finally:
        await store.close()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    last = events[-1].data()
    assert (last["type"], last["state"], last["progress"]) == ("progress", "completed", 1.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "idea2video", "x", "--shots", "0"], "shots_per_scene"),
        (["run", "idea2video", "x", "--size", "big"], "invalid literal"),
        (["run", "script2video", "@/no/such/file"], "No such file"),
        (["run", "idea2video", "x", "--chat", "gpt"], "unknown chat provider 'gpt'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--out", str(tmp_path)])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
