"""vimax_nb.client.rooms.Room: many subscriptions sharing one server subscription.

The frames are played by hand, in the orders the server may send them (old live events
before a new ``subscribed``, the pages of a superseded replay interleaved with the new
one), to check that each subscription takes every event after its position exactly once,
in order, and that only real gaps make the room subscribe again.
"""

from __future__ import annotations

from typing import Any

from vimax_nb.client.rooms import Room, RoomSubscription
from vimax_nb.protocol import Subscribe, Subscribed

EPOCH = "e1"
ROOM = "workflow:r"


def sub(after: int = 0, epoch: str | None = None) -> RoomSubscription:
    return RoomSubscription(ROOM, lambda m: None, last_seq=after, epoch=epoch)


class Player:
    """Feeds a Room frames and records what each subscription took."""

    def __init__(self, *subs: RoomSubscription) -> None:
        self.room = Room(ROOM)
        self.taken: dict[int, list[int]] = {}
        self.gaps: list[int] = []
        for s in subs:
            self.add(s)

    def add(self, s: RoomSubscription) -> RoomSubscription:
        self.room.add(s)
        self.taken[id(s)] = []
        return s

    def request(self, rid: str, epoch: str | None = EPOCH) -> Subscribe | None:
        return self.room.request(rid, epoch)

    def answer(self, rid: str | None, top: int, recovered: bool = True) -> Any:
        message = Subscribed(room=ROOM, recovered=recovered, top=top, id=rid)
        return self.room.answer(message, EPOCH)

    def events(self, *seqs: int) -> None:
        for seq in seqs:
            delivery = self.room.event(seq)
            for s in delivery.subscriptions:
                self.taken[id(s)].append(seq)
            if delivery.gap:
                self.gaps.append(seq)

    def of(self, s: RoomSubscription) -> list[int]:
        return self.taken[id(s)]


def span(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


def test_the_first_request_asks_for_everything_and_confirms_its_subscriptions() -> None:
    a = sub()
    play = Player(a)
    assert play.request("s1") == Subscribe(room=ROOM, after=None, epoch=None, id="s1")
    assert play.request("s2") is None  # nobody waits any more
    answer = play.answer("s1", top=3)
    assert answer.confirms == [a]
    assert answer.resets == []
    assert not answer.resync
    assert play.answer("s1", top=3) is None  # answered already
    play.events(1, 2, 3, 3, 4)
    assert play.of(a) == span(1, 4)
    assert play.gaps == []
    assert a.epoch == EPOCH


def test_a_late_subscriber_gets_the_replay_while_the_first_takes_old_live_events() -> None:
    first = sub()
    play = Player(first)
    play.request("s1")
    play.answer("s1", top=0)
    play.events(*span(1, 50))

    late = play.add(sub())
    request = play.request("s2")
    assert request is not None
    assert request.after is None  # the lowest position needed
    play.events(51, 52)  # live on the old subscription, before the new answer
    answer = play.answer("s2", top=52)
    assert answer.confirms == [late]  # the first subscription hears nothing new
    play.events(*span(1, 52))  # the replay
    play.events(53)

    assert play.of(first) == span(1, 53)
    assert play.of(late) == span(1, 53)
    assert play.gaps == []


def test_a_late_subscriber_beyond_top_is_reset_even_when_the_replay_is_recovered() -> None:
    first = sub()
    play = Player(first)
    play.request("s1")
    play.answer("s1", top=0)
    play.events(*span(1, 5))

    live_only = play.add(sub(2**53, EPOCH))  # "from now": beyond any top
    again = play.request("s2")
    assert again is not None
    answer = play.answer("s2", top=5, recovered=True)  # recovered for ``first``'s position
    assert answer.resets == [live_only]
    assert live_only.last_seq == 5
    play.events(6, 7)
    assert play.of(live_only) == [6, 7]
    assert play.of(first) == span(1, 7)
    assert play.gaps == []


def test_interleaved_pages_of_a_superseded_replay_give_no_duplicate_and_no_gap() -> None:
    a = sub(5, EPOCH)
    play = Player(a)
    assert play.request("s1") is not None  # after 5
    b = play.add(sub())
    assert play.request("s2") is not None  # after 0, while s1 is unanswered
    play.answer("s1", top=20)
    play.events(*span(6, 10))  # s1's first page
    play.answer("s2", top=22)
    play.events(*span(1, 10))  # s2's first page
    play.events(*span(11, 20))  # the rest of s1's replay, superseded
    play.events(*span(11, 22))  # the rest of s2's replay
    play.events(23, 24)  # live

    assert play.of(a) == span(6, 24)
    assert play.of(b) == span(1, 24)
    assert play.gaps == []


def test_a_real_gap_resubscribes_from_the_lowest_position_needed() -> None:
    a, b = sub(), sub()
    play = Player(a, b)
    play.request("s1")
    play.answer("s1", top=0)
    play.events(1, 2, 3)
    play.events(5)  # 4 is missing
    assert play.gaps == [5]
    assert play.of(a) == play.of(b) == [1, 2, 3]
    request = play.request("s2")
    assert request is not None
    assert (request.after, request.epoch) == (3, EPOCH)
    play.events(6)  # still missing 4: no second gap while the request is unanswered
    assert play.gaps == [5]
    answer = play.answer("s2", top=6)
    assert set(map(id, answer.confirms)) == {id(a), id(b)}
    play.events(4, 5, 6, 7)
    assert play.of(a) == play.of(b) == span(1, 7)


def test_not_recovered_resets_only_the_subscriptions_that_cannot_be_replayed() -> None:
    ahead, fresh = sub(10, EPOCH), sub()
    play = Player(ahead, fresh)
    request = play.request("s1")
    assert request is not None
    assert request.after is None  # the fresh one needs everything
    answer = play.answer("s1", top=20, recovered=False)  # retention dropped the start
    assert answer.resets == [fresh]
    assert fresh.last_seq == 20
    assert answer.resync  # ``ahead`` may still be replayable: ask for it alone
    request = play.request("s2")
    assert request is not None
    assert request.after == 10
    answer = play.answer("s2", top=20)
    assert answer.resets == []
    assert answer.confirms == [ahead]
    play.events(*span(11, 21))
    assert play.of(ahead) == span(11, 21)
    assert play.of(fresh) == [21]


def test_subscriptions_from_another_epoch_are_reset() -> None:
    old = sub(10, "e0")
    play = Player(old)
    request = play.request("s1")
    assert request is not None
    assert (request.after, request.epoch) == (10, "e0")
    answer = play.answer("s1", top=3, recovered=False)
    assert answer.resets == [old]
    assert (old.last_seq, old.epoch) == (3, EPOCH)
    assert not answer.resync
    play.events(4)
    assert play.of(old) == [4]


def test_answers_to_unknown_requests_and_refused_requests_are_forgotten() -> None:
    a = sub()
    play = Player(a)
    play.request("s1")
    assert play.answer("s9", top=5) is None
    assert not play.room.failed("s9")
    assert play.room.failed("s1")
    assert play.answer("s1", top=5) is None  # refused: no longer waited for
    assert a._confirm is None
    play.room.reconnected()  # every subscription asks again on a new connection
    assert play.request("s2") is not None
    assert play.answer(None, top=0) is None  # an answer without an id answers nothing
    assert play.answer("s2", top=0) is not None


def test_a_removed_subscription_takes_nothing_more() -> None:
    a, b = sub(), sub()
    play = Player(a, b)
    play.request("s1")
    play.answer("s1", top=0)
    play.events(1)
    assert not play.room.remove(a)
    assert not a.active
    play.events(2)
    assert play.of(a) == [1]
    assert play.of(b) == [1, 2]
    assert play.room.remove(b)  # the last one
