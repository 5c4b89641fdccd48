"""Connection against a fake protocol server: gaps, resets, dead peers, the offline queue
and many subscriptions to one room, each resuming after a reconnect.

The fake server (``fake_server.py``) runs on its own thread and the Connection on its
own; the tests wait on conditions with timeouts, never by sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vimax_nb.client import Connection
from vimax_nb.client.connection import Subscription

from .fake_server import FakeServer
from .helpers import Recorder, fixture_server  # noqa: F401  (a fixture)

TIMEOUT = 10.0
ROOM = "workflow:w1"


class States:
    """A connection's states, in order."""

    def __init__(self, conn: Connection) -> None:
        self.cond = threading.Condition()
        self.seen: list[str] = []
        conn.on_state(self.record)

    def record(self, state: str) -> None:
        with self.cond:
            self.seen.append(state)
            self.cond.notify_all()

    def wait_count(self, state: str, count: int, timeout: float = TIMEOUT) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: self.seen.count(state) >= count, timeout)
        assert ok, f"{state!r} not seen {count} times: {self.seen}"


@pytest.fixture
def connect() -> Iterator[Callable[..., Connection]]:
    made: list[Connection] = []

    def make(server: FakeServer, **kwargs: Any) -> Connection:
        kwargs.setdefault("backoff", (0.05,))
        conn = Connection(server.url, "token", **kwargs)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()


def subscribes(server: FakeServer, peer: int | None = None) -> list[Any]:
    """The ``after`` of each subscribe the server received."""
    return [m["after"] for m in server.messages("subscribe", peer)]


def wait_subscribes(server: FakeServer, count: int, peer: int | None = None) -> None:
    assert server.wait_for(lambda: len(server.messages("subscribe", peer)) >= count), (
        f"subscribes: {subscribes(server)}"
    )


def publish(server: FakeServer, count: int, **kwargs: Any) -> list[int]:
    return [server.publish(ROOM, **kwargs) for _ in range(count)]


# -- gaps, resets ------------------------------------------------------------------------


def test_a_gap_makes_the_room_resubscribe_from_the_last_seq(
    server: FakeServer, connect: Callable[..., Connection]
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
    assert conn.stats["gaps"] == 1
    assert conn.stats["duplicates"] == 0
    assert sub.last_seq == 4
    publish(server, 1)
    events.wait_seqs([1, 2, 3, 4, 5])


def test_a_subscription_that_cannot_be_replayed_is_reset_from_the_snapshot(
    server: FakeServer, connect: Callable[..., Connection]
) -> None:
    publish(server, 5)
    server.forget(ROOM, 3)  # retention: events 1..3 are gone
    conn = connect(server)
    events, resets, answers = Recorder(), Recorder(), Recorder()
    sub = conn.subscribe(ROOM, events, on_reset=resets, on_subscribed=answers)
    answers.wait(lambda r: len(r.messages) == 1)
    assert answers.messages[0]["recovered"] is False
    assert resets.messages == [{"room": ROOM, "top": 5, "epoch": "epoch-1"}]
    assert sub.last_seq == 5

    publish(server, 1)
    events.wait_seqs([6])  # the replay of 4..5 is covered by the snapshot: skipped
    assert conn.stats["duplicates"] == 2


def test_after_an_epoch_change_every_subscription_resets_and_goes_on_live(
    server: FakeServer, connect: Callable[..., Connection]
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
    states.wait_count("open", 2)
    resets.wait(lambda r: len(r.messages) == 1)
    assert resets.messages[0]["epoch"] == "epoch-2"
    assert server.messages("subscribe", peer=2) == [
        {"type": "subscribe", "room": ROOM, "after": 3, "epoch": "epoch-1", "id": "s2"}
    ]
    assert (sub.last_seq, sub.epoch) == (2, "epoch-2")
    publish(server, 1)
    events.wait_seqs([1, 2, 3, 3])  # seq 3 of epoch-2, live


# -- the heartbeat -------------------------------------------------------------------------


def test_a_peer_that_stops_answering_pings_is_dropped_and_the_room_resumes(
    connect: Callable[..., Connection],
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
        states.wait_count("offline", 1)
        noticed = time.monotonic() - frozen_at
        states.wait_count("open", 2)
        events.wait_seqs([1, 2, 3])

        assert noticed < 5.0  # a couple of 0.2 s heartbeats, not the 20 s default
        assert subscribes(server, peer=2) == [2]
        assert conn.stats["reconnects"] == 1
        assert conn.stats["duplicates"] == 0
    finally:
        server.close()


# -- the offline queue ------------------------------------------------------------------


def test_messages_sent_offline_wait_and_go_after_the_resubscription(
    server: FakeServer, connect: Callable[..., Connection]
) -> None:
    conn = connect(server)
    states = States(conn)
    events = Recorder()
    conn.subscribe(ROOM, events)
    publish(server, 1)
    events.wait_seqs([1])

    server.stop_listening()
    states.wait_count("offline", 1)
    controls = [
        {"type": "control", "workflow_id": "w1", "action": "pause", "id": f"c{i}"}
        for i in range(103)
    ]
    with pytest.warns(RuntimeWarning, match="offline queue full") as warned:
        list(map(conn.send, controls))
    assert len(warned) == 3
    assert ['"id": "c0"' in str(w.message) for w in warned] == [True, False, False]
    assert '"id": "c2"' in str(warned[2].message)
    assert conn.stats["dropped"] == 3
    assert conn.stats["queued"] == 100
    publish(server, 1)  # stored while the client is away

    server.start()  # the same port
    assert server.wait_for(lambda: len(server.messages(peer=2)) >= 101)
    received = server.messages(peer=2)
    assert received[0]["type"] == "subscribe"
    assert received[0]["after"] == 1
    assert [m["id"] for m in received[1:]] == [f"c{i}" for i in range(3, 103)]
    events.wait_seqs([1, 2])
    assert conn.stats["queued"] == 0


# -- many subscriptions to one room ----------------------------------------------------


def test_a_late_subscriber_gets_the_whole_history_once_and_the_first_nothing_twice(
    server: FakeServer, connect: Callable[..., Connection]
) -> None:
    conn = connect(server)
    first, late, middle = Recorder(), Recorder(), Recorder()
    first_answers, late_answers, middle_answers = Recorder(), Recorder(), Recorder()
    conn.subscribe(ROOM, first, on_subscribed=first_answers)
    publish(server, 5)
    first.wait_seqs([1, 2, 3, 4, 5])

    conn.subscribe(ROOM, late, on_subscribed=late_answers)
    late.wait_seqs([1, 2, 3, 4, 5])
    conn.subscribe(ROOM, middle, 3, on_subscribed=middle_answers)
    middle.wait_seqs([4, 5])
    publish(server, 1)
    for recorder, expected in ((first, [1, 2, 3, 4, 5, 6]), (late, [1, 2, 3, 4, 5, 6])):
        recorder.wait_seqs(expected)
    middle.wait_seqs([4, 5, 6])

    assert subscribes(server) == [None, None, 3]  # from the lowest position needed
    for answers in (first_answers, late_answers, middle_answers):
        assert len(answers.messages) == 1
        assert answers.messages[0]["recovered"] is True
    assert conn.stats["gaps"] == 0
    assert len(conn.subscriptions(ROOM)) == 3


def test_unsubscribing_one_leaves_the_others_and_the_last_one_unsubscribes_the_server(
    server: FakeServer, connect: Callable[..., Connection]
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
    assert server.messages("unsubscribe") == []

    conn.unsubscribe(sub_three)
    assert server.wait_for(lambda: len(server.messages("unsubscribe")) == 1)
    assert server.messages("unsubscribe") == [{"type": "unsubscribe", "room": ROOM}]
    assert conn.subscriptions(ROOM) == []


def test_every_subscription_resumes_from_its_own_seq_after_a_reconnect(
    server: FakeServer, connect: Callable[..., Connection]
) -> None:
    conn = connect(server)
    states = States(conn)
    ahead, behind = Recorder(), Recorder()
    subs: list[Subscription] = [conn.subscribe(ROOM, ahead)]
    publish(server, 4)
    ahead.wait_seqs([1, 2, 3, 4])
    # ``behind`` starts at 2, and is cut off before it caught up: the replay 3..4 it is
    # waiting for and the new events go to the lost connection
    server.stop_listening()
    states.wait_count("offline", 1)
    subs.append(conn.subscribe(ROOM, behind, 2))
    publish(server, 2)

    server.start()
    states.wait_count("open", 2)
    ahead.wait_seqs([1, 2, 3, 4, 5, 6])
    behind.wait_seqs([3, 4, 5, 6])
    assert subscribes(server, peer=2) == [2]
    assert [s.last_seq for s in subs] == [6, 6]

    server.drop_connections()  # once more, both at the same position
    publish(server, 1)
    states.wait_count("open", 3)
    ahead.wait_seqs([1, 2, 3, 4, 5, 6, 7])
    behind.wait_seqs([3, 4, 5, 6, 7])
    assert subscribes(server, peer=3) == [6]
    assert conn.stats["duplicates"] == 0  # 3..4 were replayed for ``behind``: needed
    assert conn.stats["gaps"] == 0


def test_subscribe_after_close_raises(
    server: FakeServer, connect: Callable[..., Connection]
) -> None:
    conn = connect(server)
    conn.start()
    conn.close()
    assert conn.state == "closed"
    with pytest.raises(ConnectionError, match="closed"):
        conn.subscribe(ROOM, Recorder())
