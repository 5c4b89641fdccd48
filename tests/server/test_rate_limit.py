"""The rate limit of the messages a client sends (docs/protocol.md, "Rate limits").

The limiter's clock is injected: in the unit tests a list of instants, on the server a
clock that moves by a fixed step each time a message is accounted for (each message
"arrives" that long after the previous one), so rates are exact and nothing sleeps.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tornado.websocket import WebSocketClosedError

from vimax_nb.server.connection import RATE_NOTICE_INTERVAL, RateLimiter, RateVerdict

from .ws_helpers import Client


class Ticks:
    """A clock that reads ``step`` seconds later at each call; ``reads`` counts them."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.reads * self.step


def run(limiter: RateLimiter, count: int) -> list[RateVerdict]:
    """The verdicts on ``count`` messages, stopping at the first abuse."""
    verdicts: list[RateVerdict] = []
    for _ in range(count):
        verdicts.append(limiter.check())
        if verdicts[-1].abuse:
            break
    return verdicts


def summary(verdicts: list[RateVerdict]) -> tuple[int, list[int], bool]:
    """(messages allowed, the drop counts reported, whether it ended in abuse)."""
    return (
        sum(v.allowed for v in verdicts),
        [v.report for v in verdicts if v.report],
        bool(verdicts) and verdicts[-1].abuse,
    )


# -- the limiter ----------------------------------------------------------------------------


def test_a_client_at_the_rate_is_never_dropped() -> None:
    limiter = RateLimiter(50.0, 100, 5.0, clock=Ticks(1 / 50))  # exactly 50 a second
    assert summary(run(limiter, 50 * 600)) == (50 * 600, [], False)  # ten minutes


def test_a_burst_is_dropped_with_one_notice_then_closed_when_it_overflows() -> None:
    # 600 messages at one instant, with the defaults: 100 pass; the drops fill the
    # abuse bucket (50 x 5 = 250) and the 251st overflows it
    limiter = RateLimiter(50.0, 100, 5.0, clock=lambda: 0.0)
    verdicts = run(limiter, 600)
    assert summary(verdicts) == (100, [1], True)
    assert len(verdicts) == 100 + 251
    assert all(v.allowed for v in verdicts[:100])
    assert limiter.dropped == 251


def test_a_burst_under_the_abuse_limit_is_forgiven() -> None:
    now = [0.0]
    limiter = RateLimiter(50.0, 100, 5.0, clock=lambda: now[0])
    assert summary(run(limiter, 300)) == (100, [1], False)  # 200 dropped, under 250
    now[0] = 6.0  # the bucket refilled, the drops leaked away
    # the notice counts the drops since the last one: the 199 untold, and this one
    assert summary(run(limiter, 300)) == (100, [200], False)


@pytest.mark.parametrize("times", [10, 100])
def test_sustained_sending_over_the_rate_is_closed_within_the_abuse_window(times: int) -> None:
    clock = Ticks(1 / (50 * times))
    limiter = RateLimiter(50.0, 100, 5.0, clock=clock)
    allowed, reports, abused = summary(run(limiter, 50 * times * 60))
    assert abused
    # closed about abuse_window / (times - 2) s after the burst is spent
    spent = 100 / (50 * (times - 1))
    assert clock.reads * clock.step <= spent + 5.0 / (times - 2) + 0.1
    assert allowed >= 100
    assert len(reports) <= 1 + clock.reads * clock.step / RATE_NOTICE_INTERVAL


def test_twice_the_rate_and_more_is_closed_in_the_end_and_less_is_not() -> None:
    # k times the rate: drops come at (k - 1) x rate and leak at the rate
    for times, closed in ((1.5, False), (3.0, True)):
        clock = Ticks(1 / (50 * times))
        limiter = RateLimiter(50.0, 100, 5.0, clock=clock)
        assert summary(run(limiter, int(50 * times * 60)))[2] is closed, times


def test_notices_come_at_most_once_a_second_and_count_every_drop() -> None:
    clock = Ticks(1 / 150)  # 3 times the rate: dropped two thirds of the time
    limiter = RateLimiter(50.0, 10, 60.0, clock=clock)
    verdicts = run(limiter, 150 * 10)  # ten seconds
    allowed, reports, abused = summary(verdicts)
    assert not abused
    assert 10 <= len(reports) <= 11  # one a second
    assert reports[0] == 1  # the first drop is told at once
    instants = [(i + 1) * clock.step for i, v in enumerate(verdicts) if v.report]
    assert all(b - a > RATE_NOTICE_INTERVAL - 1e-9 for a, b in itertools.pairwise(instants))
    # the drops told of, plus those since the last notice, are all of them
    last = max(i for i, v in enumerate(verdicts) if v.report)
    untold = sum(not v.allowed for v in verdicts[last + 1 :])
    assert sum(reports) + untold == limiter.dropped == len(verdicts) - allowed


# -- through the server ------------------------------------------------------------------


@pytest.fixture
def vimax_config() -> dict[str, Any]:
    return {"rate_limit": 5.0, "rate_burst": 20, "rate_abuse_window": 2.0}


async def connect(
    jp_ws_fetch: Any, service: Any, clock: Callable[[], float]
) -> tuple[Client, RateLimiter]:
    """A client, its connection's limiter reading ``clock``."""
    client = Client(await jp_ws_fetch("vimax", "ws"))
    welcome = await client.expect("welcome")
    limiter: RateLimiter = service.hub.connections[welcome["client_id"]].limiter
    limiter.clock = clock
    return client, limiter


async def send_pings(client: Client, count: int) -> int:
    """Send ``count`` pings (ts 0, 1, ...) without reading; how many went out before the
    server closed the connection."""
    for i in range(count):
        try:
            await client.send({"type": "ping", "ts": i})
        except WebSocketClosedError:
            return i
    return count


async def read_all(client: Client) -> list[dict[str, Any]]:
    """Every message up to the server's close."""
    messages = []
    while (message := await client.recv()) is not None:
        messages.append(message)
    return messages


def pongs_and_errors(
    messages: list[dict[str, Any]],
) -> Iterator[tuple[str, Any]]:
    for message in messages:
        if message["type"] == "pong":
            yield "pong", message["ts"]
        else:
            assert message["type"] == "error", message
            assert message["target_type"] == "protocol"
            assert message["code"] == "rate_limited", message
            assert message["retryable"] is True
            yield "rate_limited", message["details"]["dropped"]


async def hub_stats(jp_fetch: Any) -> dict[str, Any]:
    stats: dict[str, Any] = json.loads((await jp_fetch("vimax/ws/stats")).body)
    return stats


async def test_a_burst_gets_its_pongs_and_a_rate_limited_error_before_4029(
    jp_ws_fetch: Any, jp_fetch: Any, service: Any
) -> None:
    client, limiter = await connect(jp_ws_fetch, service, lambda: 0.0)  # one instant
    await send_pings(client, 200)
    messages = await read_all(client)
    assert client.close_code == 4029
    assert "rate limit" in (client.conn.close_reason or "")
    # 20 allowed (the burst), each answered, in order; then 11 dropped overflow the
    # abuse bucket (5 x 2 = 10): the first drop was told of, then the close came
    assert list(pongs_and_errors(messages)) == [("pong", i) for i in range(20)] + [
        ("rate_limited", 1)
    ]
    assert limiter.dropped == 11
    stats = await hub_stats(jp_fetch)
    assert (stats["rate_limit_closes"], stats["connections"]) == (1, 0)


async def test_sustained_sending_at_ten_times_the_rate_is_closed_within_the_window(
    jp_ws_fetch: Any, jp_fetch: Any, service: Any
) -> None:
    clock = Ticks(1 / 50)  # each message 20 ms after the previous one: 10 x the rate
    client, limiter = await connect(jp_ws_fetch, service, clock)
    await send_pings(client, 1000)
    messages = await read_all(client)
    assert client.close_code == 4029
    answers = list(pongs_and_errors(messages))
    burst = answers.index(("rate_limited", 1))  # the first drop is told of at once
    assert answers[:burst] == [("pong", i) for i in range(burst)]
    assert burst >= 20
    # closed within the abuse window (2 s) of the burst's end, in simulated time
    assert clock.reads * clock.step <= burst * clock.step + 2.0
    # every allowed ping (the burst, then one in ten) answered, in order
    pongs = [ts for kind, ts in answers if kind == "pong"]
    assert pongs == sorted(pongs)
    assert len(pongs) == clock.reads - limiter.dropped > burst
    assert (await hub_stats(jp_fetch))["rate_limit_closes"] == 1


async def test_a_client_at_the_rate_is_never_limited(
    jp_ws_fetch: Any, jp_fetch: Any, service: Any
) -> None:
    clock = Ticks(1 / 5)  # exactly the rate: 5 a second, for 100 s
    client, limiter = await connect(jp_ws_fetch, service, clock)
    try:
        assert await send_pings(client, 500) == 500
        answers = [await client.expect("pong") for _ in range(500)]
        assert [a["ts"] for a in answers] == list(range(500))
        assert limiter.dropped == 0
        stats = await hub_stats(jp_fetch)
        assert (stats["rate_limit_closes"], stats["messages_dropped"]) == (0, 0)
    finally:
        client.close()


async def test_after_a_burst_the_connection_is_as_good_as_new(
    jp_ws_fetch: Any, jp_fetch: Any, service: Any
) -> None:
    clock = Ticks(1.0)
    # the first 25 messages at one instant, the next ones 10 s later: the bucket has
    # refilled and the drops have leaked away
    client, _ = await connect(jp_ws_fetch, service, lambda: 0.0 if clock() <= 25 else 10.0)
    try:
        await send_pings(client, 25)  # 20 pass, 5 dropped: under the abuse limit
        pongs = [await client.expect("pong") for _ in range(20)]
        assert [p["ts"] for p in pongs] == list(range(20))
        notice = await client.expect("error")
        assert notice["code"] == "rate_limited"
        assert notice["details"] == {"dropped": 1, "rate_limit": 5.0, "rate_burst": 20}
        assert "5 messages a second" in notice["message"]
        await send_pings(client, 20)
        assert [(await client.expect("pong"))["ts"] for _ in range(20)] == list(range(20))
        assert client.close_code is None
        stats = await hub_stats(jp_fetch)
        assert (stats["rate_limit_closes"], stats["messages_dropped"]) == (0, 5)
    finally:
        client.close()
