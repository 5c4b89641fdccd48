"""ClientConnection against a fake protocol server: gaps, resets, dead peers, frames to skip,
the offline queue and many subscriptions to one room, each resuming after a reconnect.

The fake server (``fake_server.py``) runs on its own thread and the connection on its
own; the tests wait on conditions with timeouts, never by sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vimax_nb.client import (
    ClientConnection,
    ConnectionState,
    RoomSubscription,
    SocketOptions,
)
from vimax_nb.protocol import (
    Control,
    ControlAction,
    ControlResponse,
    ProgressEvent,
    Subscribe,
    Unsubscribe,
    WorkflowRecord,
)

from .fake_server import FakeServer
from .helpers import Recorder, fixture_server  # noqa: F401  (a fixture)

TIMEOUT = 10.0
ROOM = "workflow:w1"


class States:
    """A connection's states, in order."""

    def __init__(self, conn: ClientConnection) -> None:
        self.cond = threading.Condition()
        self.seen: list[ConnectionState] = []
        conn.on_state(self.record)

    def record(self, state: ConnectionState) -> None:
        with self.cond:
            self.seen.append(state)
            self.cond.notify_all()

    def wait_count(self, state: ConnectionState, count: int, timeout: float = TIMEOUT) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: self.seen.count(state) >= count, timeout)
        assert ok, f"{state!r} not seen {count} times: {self.seen}"


@pytest.fixture
def connect() -> Iterator[Callable[..., ClientConnection]]:
    made: list[ClientConnection] = []

    def make(server: FakeServer, **options: Any) -> ClientConnection:
        options.setdefault("backoff", (0.05,))
        conn = ClientConnection(server.url, "token", SocketOptions(**options))
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()


def subscribes(server: FakeServer, peer: int | None = None) -> list[int | None]:
    """The ``after`` of each subscribe the server received."""
    return [m.after for m in server.messages(Subscribe, peer)]


def wait_subscribes(server: FakeServer, count: int, peer: int | None = None) -> None:
    assert server.wait_for(lambda: len(server.messages(Subscribe, peer)) >= count), (
        f"subscribes: {subscribes(server)}"
    )


def publish(server: FakeServer, count: int, **kwargs: Any) -> list[int]:
    return [server.publish(ROOM, **kwargs) for _ in range(count)]


# -- gaps, resets ------------------------------------------------------------------------


def test_a_gap_makes_the_room_resubscribe_from_the_last_seq(
    server: FakeServer, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect(server)
    events = Recorder()
    sub = conn.subscribe(ROOM, events)
    wait_subscribes(server, 1)
    publish(server, 2)
    events.wait_seqs([1, 2])

    server.publish(ROOM, live=False)  # seq 3 is stored but never sent live
    server.publish(ROOM)  # seq 4 arrives after 2: a gap
    events.wait_seqs([1, 2, 3, 4])

    assert subscribes(server) == [None, 2]
    assert sub.last_seq == 4
    publish(server, 1)
    events.wait_seqs([1, 2, 3, 4, 5])
    assert all(isinstance(e, ProgressEvent) and e.room == ROOM for e in events.messages)


def test_a_subscription_that_cannot_be_replayed_is_reset_from_the_snapshot(
    server: FakeServer, connect: Callable[..., ClientConnection]
) -> None:
    publish(server, 4)
    publish(server, 1, state="paused", progress=0.5, message="held")
    server.forget(ROOM, 3)  # retention: events 1..3 are gone
    conn = connect(server)
    events, resets, answers = Recorder(), Recorder(), Recorder()
    sub = conn.subscribe(ROOM, events, on_reset=resets, on_subscribed=answers)
    answers.wait(lambda r: len(r.messages) == 1)
    assert answers.messages[0].recovered is False
    assert answers.messages[0].top == 5
    (snapshot,) = resets.messages
    assert isinstance(snapshot, WorkflowRecord)
    assert (snapshot.id, snapshot.state, snapshot.progress) == ("w1", "paused", 0.5)
    assert sub.last_seq == 5

    publish(server, 1)
    events.wait_seqs([6])  # the replay of 4..5 is covered by the snapshot: skipped


def test_after_an_epoch_change_every_subscription_resets_and_goes_on_live(
    server: FakeServer, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect(server)
    states = States(conn)
    events, resets = Recorder(), Recorder()
    sub = conn.subscribe(ROOM, events, on_reset=resets)
    publish(server, 3)
    events.wait_seqs([1, 2, 3])
    assert sub.epoch == "epoch-1"

    server.reset_log("epoch-2")
    publish(server, 2)  # the new log's seqs 1 and 2, not the client's
    server.drop_connections()
    states.wait_count(ConnectionState.open, 2)
    resets.wait(lambda r: len(r.messages) == 1)
    assert isinstance(resets.messages[0], WorkflowRecord)
    assert server.messages(Subscribe, peer=2) == [
        Subscribe(room=ROOM, after=3, epoch="epoch-1", id="s2")
    ]
    assert (sub.last_seq, sub.epoch) == (2, "epoch-2")
    publish(server, 1)
    events.wait_seqs([1, 2, 3, 3])  # seq 3 of epoch-2, live


# -- frames to skip ------------------------------------------------------------------------


def test_unknown_and_invalid_frames_are_skipped_without_a_gap(
    server: FakeServer,
    connect: Callable[..., ClientConnection],
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = connect(server)
    events = Recorder()
    conn.subscribe(ROOM, events)
    wait_subscribes(server, 1)
    with caplog.at_level(logging.DEBUG, logger="vimax_nb.client.connection"):
        publish(server, 1)
        server.publish(ROOM, type="telemetry", cpu=0.5)  # a newer server's event type
        server.publish(ROOM, workflow_id="w1", state="running", progress=7)  # not valid
        server.publish(ROOM, progress=0.5, colour="blue")  # a field this client ignores
        events.wait_seqs([1, 4])
    assert events.messages[1].progress == 0.5
    skipped = [(r.levelno, r.getMessage()) for r in caplog.records if "skipped" in r.msg]
    assert [level for level, _ in skipped] == [logging.DEBUG, logging.WARNING]
    assert 'unknown message type "telemetry"' in skipped[0][1]
    assert "field 'progress' must be a number >= 0.0 and <= 1.0 (got 7)" in skipped[1][1]
    assert subscribes(server) == [None]  # 2 and 3 made no gap: nothing was asked again

    publish(server, 1)
    events.wait_seqs([1, 4, 5])


# -- the heartbeat -------------------------------------------------------------------------


def test_a_peer_that_stops_answering_pings_is_dropped_and_the_room_resumes(
    connect: Callable[..., ClientConnection],
) -> None:
    server = FakeServer(heartbeat_interval=0.2).start()  # the client adopts the interval
    try:
        conn = connect(server)
        states = States(conn)
        events = Recorder()
        conn.subscribe(ROOM, events)
        wait_subscribes(server, 1)
        publish(server, 2)
        events.wait_seqs([1, 2])

        server.freeze()  # the TCP connection stays open: only the heartbeat can tell
        frozen_at = time.monotonic()
        publish(server, 1)  # not sent: the peer is frozen
        states.wait_count(ConnectionState.offline, 1)
        noticed = time.monotonic() - frozen_at
        states.wait_count(ConnectionState.open, 2)
        events.wait_seqs([1, 2, 3])

        assert noticed < 5.0  # a couple of 0.2 s heartbeats, not the 20 s default
        assert subscribes(server, peer=2) == [2]
        assert len(server.peers) == 2
    finally:
        server.close()


# -- the offline queue ------------------------------------------------------------------


def test_requests_made_offline_wait_and_go_after_the_resubscription(
    server: FakeServer,
    connect: Callable[..., ClientConnection],
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = connect(server)
    states = States(conn)
    events = Recorder()
    conn.subscribe(ROOM, events)
    publish(server, 1)
    events.wait_seqs([1])

    server.stop_listening()
    states.wait_count(ConnectionState.offline, 1)
    done = threading.Condition()
    answers: dict[str, ControlResponse] = {}
    dropped: dict[str, ConnectionError] = {}

    def pause(rid: str) -> None:
        try:
            answer = conn.request(Control(workflow_id="w1", action="pause", id=rid), TIMEOUT)
        except ConnectionError as exc:
            with done:
                dropped[rid] = exc
                done.notify_all()
        else:
            with done:
                answers[rid] = answer

    ids = [f"c{i}" for i in range(103)]
    threads = [threading.Thread(target=pause, args=(rid,)) for rid in ids]

    def start_all() -> None:
        for thread in threads:
            thread.start()
        # the queue holds 100: the three oldest requests are dropped, and fail at once
        with done:
            assert done.wait_for(lambda: len(dropped) == 3, TIMEOUT), dropped

    # each drop is logged and warned (warnings from many threads are not counted reliably)
    with pytest.warns(RuntimeWarning, match="offline queue full"):
        start_all()
    assert all("dropped from the offline queue" in str(e) for e in dropped.values())
    logged = [r.getMessage() for r in caplog.records if "offline queue full" in r.msg]
    assert len(logged) == 3
    assert {text.rsplit('"id":', 1)[1].strip('"}') for text in logged} == set(dropped)
    publish(server, 1)  # stored while the client is away

    server.start()  # the same port
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(answers) == sorted(set(ids) - set(dropped))
    assert all(a.state == "paused" and a.action == ControlAction.pause for a in answers.values())
    received = server.all_messages(peer=2)
    assert received[0] == Subscribe(room=ROOM, after=1, epoch="epoch-1", id="s2")
    sent = [m.id for m in received[1:] if isinstance(m, Control)]
    assert sorted(sent) == sorted(answers)  # each queued request once, none dropped
    events.wait_seqs([1, 2])


def test_a_request_that_times_out_offline_is_never_sent_later(
    server: FakeServer, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect(server)
    states = States(conn)
    conn.start()
    states.wait_count(ConnectionState.open, 1)
    server.stop_listening()
    states.wait_count(ConnectionState.offline, 1)
    pause = Control(workflow_id="w1", action="pause", id="p1")
    with pytest.raises(TimeoutError, match="not sent: withdrawn from the offline queue"):
        conn.request(pause, timeout=0.1)

    server.start()  # the same port; a request made now goes out after anything queued
    resume = conn.request(Control(workflow_id="w1", action="resume"), TIMEOUT)
    assert resume.state == "running"
    assert [m.action for m in server.messages(Control)] == [ControlAction.resume]


# -- many subscriptions to one room ----------------------------------------------------


def test_a_late_subscriber_gets_the_whole_history_once_and_the_first_nothing_twice(
    server: FakeServer, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect(server)
    first, late, middle = Recorder(), Recorder(), Recorder()
    first_answers, late_answers, middle_answers = Recorder(), Recorder(), Recorder()
    subs = [conn.subscribe(ROOM, first, on_subscribed=first_answers)]
    publish(server, 5)
    first.wait_seqs([1, 2, 3, 4, 5])

    subs.append(conn.subscribe(ROOM, late, on_subscribed=late_answers))
    late.wait_seqs([1, 2, 3, 4, 5])
    subs.append(conn.subscribe(ROOM, middle, 3, on_subscribed=middle_answers))
    middle.wait_seqs([4, 5])
    publish(server, 1)
    for recorder, expected in ((first, [1, 2, 3, 4, 5, 6]), (late, [1, 2, 3, 4, 5, 6])):
        recorder.wait_seqs(expected)
    middle.wait_seqs([4, 5, 6])

    assert subscribes(server) == [None, None, 3]  # from the lowest position needed
    for answers in (first_answers, late_answers, middle_answers):
        assert len(answers.messages) == 1
        assert answers.messages[0].recovered is True
    assert [s.last_seq for s in subs] == [6, 6, 6]


def test_unsubscribing_one_leaves_the_others_and_the_last_one_unsubscribes_the_server(
    server: FakeServer, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect(server)
    one, two, three = Recorder(), Recorder(), Recorder()
    sub_one = conn.subscribe(ROOM, one)
    sub_two = conn.subscribe(ROOM, two)
    publish(server, 2)
    two.wait_seqs([1, 2])
    one.wait_seqs([1, 2])

    conn.unsubscribe(sub_one)
    conn.unsubscribe(sub_one)  # idempotent
    assert not sub_one.active
    publish(server, 1)
    two.wait_seqs([1, 2, 3])
    sub_three = conn.subscribe(ROOM, three, 2)
    three.wait_seqs([3])
    conn.unsubscribe(sub_two)
    publish(server, 1)
    three.wait_seqs([3, 4])
    assert one.seqs() == [1, 2]
    assert two.seqs() == [1, 2, 3]
    assert server.messages(Unsubscribe) == []

    conn.unsubscribe(sub_three)
    assert server.wait_for(lambda: len(server.messages(Unsubscribe)) == 1)
    assert server.messages(Unsubscribe) == [Unsubscribe(room=ROOM)]
    assert not sub_three.active


def test_every_subscription_resumes_from_its_own_seq_after_a_reconnect(
    server: FakeServer, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect(server)
    states = States(conn)
    ahead, behind = Recorder(), Recorder()
    subs: list[RoomSubscription] = [conn.subscribe(ROOM, ahead)]
    publish(server, 4)
    ahead.wait_seqs([1, 2, 3, 4])
    # ``behind`` starts at 2, and is cut off before it caught up: the replay 3..4 it is
    # waiting for and the new events go to the lost connection
    server.stop_listening()
    states.wait_count(ConnectionState.offline, 1)
    subs.append(conn.subscribe(ROOM, behind, 2))
    publish(server, 2)

    server.start()
    states.wait_count(ConnectionState.open, 2)
    ahead.wait_seqs([1, 2, 3, 4, 5, 6])
    behind.wait_seqs([3, 4, 5, 6])
    assert subscribes(server, peer=2) == [2]
    assert [s.last_seq for s in subs] == [6, 6]

    server.drop_connections()  # once more, both at the same position
    publish(server, 1)
    states.wait_count(ConnectionState.open, 3)
    ahead.wait_seqs([1, 2, 3, 4, 5, 6, 7])
    behind.wait_seqs([3, 4, 5, 6, 7])
    assert subscribes(server, peer=3) == [6]


def test_subscribe_after_close_raises_and_a_bad_room_is_refused(
    server: FakeServer, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect(server)
    with pytest.raises(ValueError, match="invalid room 'workflows:w1'"):
        conn.subscribe("workflows:w1", Recorder())
    conn.start()
    conn.close()
    assert conn.state == ConnectionState.closed
    with pytest.raises(ConnectionError, match="closed"):
        conn.subscribe(ROOM, Recorder())
    with pytest.raises(ConnectionError, match="closed"):
        conn.request(Control(workflow_id="w1", action="pause"), TIMEOUT)
