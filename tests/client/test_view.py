"""The client's view model (vimax_nb.client.view): what both front ends show of a run and
of the agents, computed once. Pure functions and a clock driven by hand."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from vimax_nb.client import Client, ConnectionState
from vimax_nb.client.view import (
    AGENT_FILTERS,
    ETA_MIN_SECONDS,
    OFFLINE,
    RunClock,
    StageRow,
    WorkflowRow,
    agent_counts,
    connection_state,
    cut_off,
    elapsed_seconds,
    format_duration,
    log_line,
    run_status,
    stage_rows,
    subject_of,
    summary,
    time_of_day,
    title_of,
    workflow_row,
)
from vimax_nb.protocol import (
    AgentRecord,
    AgentStatusEvent,
    ArtifactEvent,
    ErrorEvent,
    ProgressEvent,
    StageProgress,
    WorkflowRecord,
    WorkflowState,
)

STAGES = [
    StageProgress(name="story", done=1, total=1),
    StageProgress(name="frames", done=3, total=8),
    StageProgress(name="clips", done=0, total=8),
    StageProgress(name="edit"),
]


def rows(state: str, current: str | None = "frames") -> list[tuple[str, str]]:
    return [(r.name, r.status) for r in stage_rows(STAGES, WorkflowState(state), current)]


def test_stage_rows_of_a_running_run() -> None:
    assert stage_rows(STAGES, WorkflowState.running, "frames") == [
        StageRow("story", "done", 1, 1),
        StageRow("frames", "running", 3, 8),
        StageRow("clips", "pending", 0, 8),
        StageRow("edit", "pending", 0, 0),
    ]
    assert [r.tally for r in stage_rows(STAGES, WorkflowState.running, None)] == [
        "1/1",
        "3/8",
        "0/8",
        "",
    ]


def test_a_stage_with_done_tasks_has_started_even_when_it_is_not_the_current_one() -> None:
    assert rows("running", current="clips") == [
        ("story", "done"),
        ("frames", "running"),
        ("clips", "running"),
        ("edit", "pending"),
    ]


@pytest.mark.parametrize("state", ["paused", "failed", "canceled", "interrupted"])
def test_a_halted_run_halts_its_started_stages_in_its_state(state: str) -> None:
    assert rows(state) == [
        ("story", "done"),
        ("frames", state),
        ("clips", "pending"),
        ("edit", "pending"),
    ]


def test_a_completed_run_has_every_stage_done() -> None:
    assert {status for _, status in rows("completed")} == {"done"}


def test_the_clock_estimates_only_after_enough_progress_and_time() -> None:
    now = [100.0]
    clock = RunClock(lambda: now[0])
    running = WorkflowState.running
    assert clock.remaining(running, 0.10) is None  # the origin
    now[0] += 5.0
    assert clock.remaining(running, 0.11) is None  # 1% made: not enough
    assert clock.remaining(running, 0.20) == pytest.approx(0.80 * 5.0 / 0.10)
    now[0] += 5.0
    assert clock.remaining(running, 0.60) == pytest.approx(0.40 * 10.0 / 0.50)
    assert clock.remaining(running, 1.0) == 0.0


def test_the_clock_needs_time_as_well_as_progress() -> None:
    now = [0.0]
    clock = RunClock(lambda: now[0])
    assert clock.remaining(WorkflowState.running, 0.0) is None
    now[0] = ETA_MIN_SECONDS / 2
    assert clock.remaining(WorkflowState.running, 0.5) is None
    now[0] = ETA_MIN_SECONDS
    assert clock.remaining(WorkflowState.running, 0.5) == pytest.approx(ETA_MIN_SECONDS)


def test_the_clock_starts_again_when_progress_goes_back_or_the_run_stops() -> None:
    now = [0.0]
    clock = RunClock(lambda: now[0])
    running = WorkflowState.running
    clock.remaining(running, 0.5)
    now[0] = 10.0
    assert clock.remaining(running, 0.6) is not None
    assert clock.remaining(running, 0.2) is None  # backwards: a new origin, here
    now[0] = 20.0
    assert clock.remaining(running, 0.3) == pytest.approx(0.7 * 10.0 / 0.1)
    assert clock.remaining(WorkflowState.paused, 0.3) is None
    now[0] = 1000.0  # a long pause does not count: resumed, it starts again
    assert clock.remaining(running, 0.3) is None
    now[0] = 1010.0
    assert clock.remaining(running, 0.4) == pytest.approx(0.6 * 10.0 / 0.1)


def record(**fields: Any) -> WorkflowRecord:
    values = {
        "id": "wf-1",
        "kind": "idea2video",
        "params": {"idea": "A fox"},
        "state": "running",
        "progress": 0.5,
        "created_at": "2030-01-01T12:00:00Z",
        "updated_at": "2030-01-01T12:00:00Z",
        **fields,
    }
    return WorkflowRecord.model_validate(values)


def test_elapsed_time_comes_from_the_records_timestamps() -> None:
    start = "2030-01-01T12:00:00.000Z"
    end = "2030-01-01T12:01:05.500Z"
    started = record(started_at=start)
    noon = 1_893_499_200.0  # 2030-01-01T12:00:00Z
    assert elapsed_seconds(started, done=False, now=noon + 30) == 30.0
    assert elapsed_seconds(started, done=True, now=noon + 30) == 30.0  # no end yet: now
    assert elapsed_seconds(record(started_at=start, finished_at=end), done=True) == 65.5
    assert elapsed_seconds(record(), done=False) is None
    assert elapsed_seconds(started, done=False, now=0.0) == 0.0  # never negative


def test_the_clock_counts_its_own_time_until_the_record_says_the_run_started() -> None:
    now = [50.0]
    clock = RunClock(lambda: now[0])
    now[0] = 62.0
    assert clock.elapsed(record(), done=False) == 12.0
    finished = record(started_at="2030-01-01T12:00:00Z", finished_at="2030-01-01T12:00:09Z")
    assert clock.elapsed(finished, done=True) == 9.0


@pytest.mark.parametrize(
    ("seconds", "style", "text"),
    [
        (7.4, "clock", "0:07"),
        (725, "clock", "12:05"),
        (3723, "clock", "1:02:03"),
        (7.4, "words", "7s"),
        (725, "words", "12m 05s"),
        (3723, "words", "1h 02m"),
        (-3, "words", "0s"),
        (0.15, "fine", "150 ms"),
        (1.5, "fine", "1.5 s"),
        (125, "fine", "2m 05s"),
    ],
)
def test_one_duration_formatter_in_three_styles(seconds: float, style: Any, text: str) -> None:
    assert format_duration(seconds, style) == text


def test_time_of_day_is_local_and_keeps_what_it_cannot_read() -> None:
    stamp = "2030-01-01T12:00:00+00:00"
    seconds = 1_893_499_200.0
    assert time_of_day(stamp) == time.strftime("%H:%M:%S", time.localtime(seconds))
    assert time_of_day("2030-01-01T12:00:00Z") == time_of_day(stamp)
    assert time_of_day("yesterday") == "yesterday"
    assert time_of_day(None) is None
    assert time_of_day("") is None


def test_log_lines_of_every_kind_of_event() -> None:
    stamp = "2030-01-01T12:00:00Z"
    clock = time_of_day(stamp)
    progress = ProgressEvent(
        workflow_id="wf-1",
        state=WorkflowState.running,
        progress=0.4,
        stage="frames",
        message="frame 3 of 8",
        timestamp=stamp,
    )
    assert log_line(progress) == f"{clock} running 40% [frames] frame 3 of 8"
    bare = ProgressEvent(workflow_id="wf-1", state=WorkflowState.completed, progress=1.0)
    assert re.fullmatch(r"\d\d:\d\d:\d\d completed 100%", log_line(bare))  # no time: now
    artifact = ArtifactEvent.model_validate(
        {"workflow_id": "wf-1", "stage": "frames", "name": "shot.png", "kind": "image",
         "url": "/x", "timestamp": stamp}
    )  # fmt: skip
    assert log_line(artifact) == f"{clock} artifact image shot.png"
    error = ErrorEvent.model_validate(
        {"target_type": "workflow", "code": "task_failed", "message": "<b>boom</b>",
         "timestamp": stamp}
    )  # fmt: skip
    assert log_line(error) == f"{clock} error task_failed: <b>boom</b>"
    other = AgentStatusEvent.model_validate(
        {"agent_name": "editor", "status": "idle", "timestamp": stamp}
    )
    assert log_line(other) == f"{clock} agent_status"


def test_subject_and_title() -> None:
    idea = "A lighthouse keeper befriends a whale who sings at night"
    assert subject_of({"idea": idea}, 24) == "A lighthouse keeper..."
    assert subject_of({"script": "INT. ROOM\n\n  MARA   waits"}) == "INT. ROOM MARA waits"
    assert subject_of({}) == ""
    assert len(subject_of({"idea": "x" * 100}, 40)) == 40  # no word to cut at
    assert title_of("idea2video", {"idea": "A fox"}) == "idea2video 'A fox'"
    assert title_of("script2video", {}) == "script2video"


def agent(name: str, status: str) -> AgentRecord:
    return AgentRecord.model_validate({"name": name, "status": status})


def test_agent_counts_and_summary() -> None:
    agents = [agent(f"a{i}", "idle") for i in range(6)] + [agent("b", "busy")] * 2
    assert AGENT_FILTERS == ("all", "idle", "busy", "error", "offline")
    assert agent_counts(agents) == {"all": 8, "idle": 6, "busy": 2, "error": 0, "offline": 0}
    assert summary(agents) == "8 agents: 6 idle, 2 busy"
    assert summary([agent("solo", "offline")]) == "1 agent: 1 offline"
    assert summary([]) == "0 agents"


# -- the connection and the workflows ------------------------------------------------------


@pytest.mark.parametrize("state", list(WorkflowState))
@pytest.mark.parametrize("connection", list(ConnectionState))
def test_a_run_is_cut_off_until_it_ends_while_its_connection_is_down(
    state: WorkflowState, connection: ConnectionState
) -> None:
    ended = state in (WorkflowState.completed, WorkflowState.failed, WorkflowState.canceled)
    down = connection in (ConnectionState.offline, ConnectionState.closed)
    assert cut_off(state, connection) is (down and not ended)
    assert run_status(state, connection) == (OFFLINE if down and not ended else state)


def test_the_connection_state_of_a_closed_client_is_closed() -> None:
    client = Client("http://127.0.0.1:9/")  # never connected: its connection waits
    assert connection_state(client) == ConnectionState.offline
    client.close()
    assert connection_state(client) == ConnectionState.closed


def test_a_workflow_row_is_display_strings() -> None:
    record = WorkflowRecord(
        id="wf-1",
        kind="idea2video",
        params={"idea": "A lighthouse keeper befriends a whale who sings at night"},
        state=WorkflowState.running,
        progress=0.456,
        stage=None,
        created_at="2030-01-02T03:04:05.678+00:00",
        updated_at="2030-01-02T03:04:05.678+00:00",
    )
    assert workflow_row(record, 24) == WorkflowRow(
        id="wf-1",
        kind="idea2video",
        state="running",
        progress="46%",
        stage="",
        created="2030-01-02 03:04:05",
        subject="A lighthouse keeper...",
    )
    assert workflow_row(record).subject == "A lighthouse keeper befriends a whale..."
