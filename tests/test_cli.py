"""The ``vimax-nb`` command as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vimax_nb.cli import main
from vimax_nb.store import Store


def test_demo_runs_the_storyboard_workflow_and_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    idea = "A fox wants to fly. She builds wings from leaves. The wind carries her home."
    assert main(["demo", idea, "--beats", "3", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "100%  completed" in out
    [storyboard] = tmp_path.glob("*/storyboard.md")
    text = storyboard.read_text()
    assert "Panel 1 (wide shot): A fox wants to fly." in text
    assert "Panel 3 (close-up): The wind carries her home." in text
    assert f"wrote {storyboard}" in out


async def test_the_demo_leaves_a_durable_event_log(tmp_path: Path) -> None:
    from vimax_nb.cli import run_demo

    assert await run_demo("One. Two.", 2, tmp_path) == 0
    store = await Store.open(tmp_path / "vimax.sqlite3")
    try:
        [record] = await store.workflows.records()
        events = await store.events.read(f"workflow:{record.id}")
    finally:
        await store.close()
    assert record.state == "completed"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    last = events[-1].data()
    assert (last["type"], last["state"], last["progress"]) == ("progress", "completed", 1.0)


def test_bad_arguments_exit_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--beats", "0", "--workdir", str(tmp_path)])
    assert exited.value.code == 2
    assert "'beats' must be a whole number from 1 to 50 (got 0)" in capsys.readouterr().err
