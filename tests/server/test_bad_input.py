"""Bad input through a real server: REST answers 400 (or 416) with a JSON message, never
500; a bad WebSocket frame gets an ``error`` frame with a stable code and the connection
stays open, but for the close codes the protocol names (1007 for a text frame that is
not UTF-8)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from vimax_nb.protocol import CLOSE_INVALID_UTF8, ErrorCode
from vimax_nb.protocol.limits import INT64_MAX, MAX_JSON_DEPTH

from .conftest import Gate, install_toy, post_json, record_of
from .ws_helpers import OP_CLOSE, OP_TEXT, Client, RawWebSocket

OP_BINARY = 0x2


async def fails(call: Any, code: int) -> str:
    """Await ``call``, expect HTTP ``code`` with a JSON ``message``; return the message."""
    with pytest.raises(HTTPClientError) as caught:
        await call
    assert caught.value.code == code, caught.value.response and caught.value.response.body
    assert caught.value.response is not None
    message = json.loads(caught.value.response.body)["message"]
    assert isinstance(message, str)
    assert message
    return message


@pytest.fixture
def toy(service: Any) -> Iterator[Gate]:
    gate = Gate()
    install_toy(service.coordinator, gate)
    try:
        yield gate
    finally:
        gate.opened.set()


@pytest.fixture
def server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """The ERROR records the server logs during the test (an uncaught exception is one)."""
    caplog.set_level(logging.ERROR)
    records: list[logging.LogRecord] = []
    yield records
    records.extend(r for r in caplog.records if r.levelno >= logging.ERROR)


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- REST -----------------------------------------------------------------------------

FIVE_THOUSAND_DIGITS = "9" * 5000


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (deep(10000).encode(), f"nested more than {MAX_JSON_DEPTH} levels deep"),
        (
            b'{"kind": "idea2video", "params": {"idea": "x", "style": %s}}' % deep(40).encode(),
            f"nested more than {MAX_JSON_DEPTH} levels deep",
        ),
        (
            b'{"kind": "idea2video", "params": {"idea": "x", "seed": %s}}'
            % FIVE_THOUSAND_DIGITS.encode(),
            "field 'params.seed' must be an integer from -9223372036854775808 to "
            "9223372036854775807 (got a 5000-digit integer)",
        ),
        (
            b'{"kind": "idea2video", "params": {"idea": "x", "seed": %d}}' % (INT64_MAX + 1),
            "field 'params.seed' must be an integer from",
        ),
        (
            b'{"kind": "idea2video", "params": {"idea": "x", "fps": NaN}}',
            "field 'params.fps' must be a number (NaN and Infinity are not JSON)",
        ),
        (
            b'{"kind": "idea2video", "params": {"idea": "x", "fps": 1e400}}',
            "field 'params.fps' must be a finite number (got 1e400)",
        ),
        (
            b'{"kind": "idea2video", "params": {"idea": "a \\ud800 whale"}}',
            "field 'params.idea' must be valid Unicode, not a lone UTF-16 surrogate",
        ),
        (b'{"kind": "\xff"}', "the request body is not UTF-8 text"),
    ],
    ids=["array-10000", "deep-param", "int-5000", "int-2**63", "nan", "1e400", "surrogate", "utf8"],
)
async def test_a_post_with_an_unusable_body_is_400_naming_the_problem(
    jp_fetch: Any, server_errors: list[logging.LogRecord], body: bytes, words: str
) -> None:
    message = await fails(jp_fetch("vimax/api/workflows", method="POST", body=body), 400)
    assert words in message
    assert message.isascii()
    # the server is fine: the same route takes a good request
    listed = await jp_fetch("vimax/api/workflows")
    assert "workflows" in json.loads(listed.body)
    assert server_errors == []


@pytest.mark.parametrize(
    "after",
    [str(INT64_MAX + 1), FIVE_THOUSAND_DIGITS, "1_000", "\u0663", "-1"],
    ids=["2**63", "5000-digits", "underscore", "arabic-indic-digit", "negative"],
)
async def test_events_after_must_fit_a_64_bit_integer(
    jp_fetch: Any, toy: Gate, server_errors: list[logging.LogRecord], after: str
) -> None:
    created = await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story"})
    wid = record_of(created).id
    message = await fails(
        jp_fetch("vimax/api/workflows", wid, "events", params={"after": after}), 400
    )
    assert message.startswith(f"after must be an integer from 0 to {INT64_MAX} (got ")
    assert len(message) < 200
    assert server_errors == []


async def test_events_after_the_largest_64_bit_integer_are_none(jp_fetch: Any, toy: Gate) -> None:
    created = await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story"})
    wid = record_of(created).id
    page = await jp_fetch("vimax/api/workflows", wid, "events", params={"after": str(INT64_MAX)})
    assert json.loads(page.body)["events"] == []


@pytest.mark.parametrize(
    "header",
    [
        f"bytes={FIVE_THOUSAND_DIGITS}-",
        f"bytes=0-{FIVE_THOUSAND_DIGITS}",
        f"bytes=-{FIVE_THOUSAND_DIGITS}",
    ],
    ids=["huge-start", "huge-end", "huge-suffix"],
)
async def test_an_artifact_range_with_huge_numbers_is_not_a_500(
    jp_fetch: Any,
    toy: Gate,
    vimax_workdir: Path,
    server_errors: list[logging.LogRecord],
    header: str,
) -> None:
    created = await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story"})
    wid = record_of(created).id
    (vimax_workdir / wid).mkdir(parents=True, exist_ok=True)
    (vimax_workdir / wid / "notes.txt").write_bytes(b"hello")
    url = ("vimax/api/workflows", wid, "artifacts", "notes.txt")
    if header.startswith("bytes=0-") or header.startswith("bytes=-"):
        # a range past the end is the whole file (a suffix longer than it too)
        response = await jp_fetch(*url, headers={"Range": header})
        assert response.body == b"hello"
    else:
        message = await fails(jp_fetch(*url, headers={"Range": header}), 416)
        assert "outside the file (5 bytes)" in message
    assert server_errors == []


# -- WebSocket ------------------------------------------------------------------------


async def connect(jp_ws_fetch: Any) -> Client:
    """A client of ``/vimax/ws`` past its ``welcome``."""
    client = Client(await jp_ws_fetch("vimax", "ws"))
    await client.expect("welcome")
    return client


async def still_open(client: Client) -> None:
    """The connection answers a ping: it survived what came before."""
    pong = await client.request({"type": "ping", "ts": "after"}, "pong")
    assert pong["ts"] == "after"


HOSTILE_FRAMES = [
    # (frame, code, request id echoed, words of the message)
    (deep(10000), "invalid_message", None, "nested more than 32 levels deep"),
    (
        f'{{"type": "subscribe", "room": "coordinator", "after": {FIVE_THOUSAND_DIGITS}, '
        '"id": "s1"}',
        "invalid_message",
        "s1",
        "subscribe: field 'after' must be an integer from 0"[:40],
    ),
    ('{"type": "ping", "ts": "\\ud800"}', "invalid_message", None, "field 'ts' must be valid"),
    ('{"type": "x", "id": "\\udc00"}', "invalid_message", None, "field 'id' must be valid"),
    (
        '{"type": "subscribe", "room": "agent:\\ud800", "id": "r1"}',
        "invalid_message",
        "r1",
        "field 'room' must be valid Unicode",
    ),
    ('{"type": "ping", "ts": 1e400}', "invalid_message", None, "must be a finite number"),
    (
        '{"type": "control", "workflow_id": "w", "action": "pause", "id": "c1", "x": NaN}',
        "invalid_message",
        "c1",
        "field 'x' must be a number (NaN",
    ),
]


@pytest.mark.parametrize(
    ("frame", "code", "request_id", "words"),
    HOSTILE_FRAMES,
    ids=["array-10000", "int-5000", "ts-surrogate", "id-surrogate", "room-surrogate", "inf", "nan"],
)
async def test_a_hostile_frame_gets_an_error_frame_and_the_connection_stays_open(
    jp_ws_fetch: Any,
    service: Any,
    server_errors: list[logging.LogRecord],
    frame: str,
    code: str,
    request_id: str | None,
    words: str,
) -> None:
    client = await connect(jp_ws_fetch)
    error = await client.request(frame, "error")
    assert error["target_type"] == "protocol"
    assert error["code"] == code
    assert error["id"] == request_id
    assert words in error["message"]
    await still_open(client)
    client.close()
    assert server_errors == []


async def test_a_binary_frame_that_is_not_utf8_is_bad_json(
    jp_http_port: int, jp_base_url: str, jp_serverapp: Any, jp_fetch: Any, service: Any
) -> None:
    token = jp_serverapp.identity_provider.token
    path = jp_base_url.rstrip("/") + "/vimax/ws"
    raw = await RawWebSocket.connect(jp_http_port, path, {"Authorization": f"token {token}"})
    try:
        assert (await raw.read_frame()).json()["type"] == "welcome"  # type: ignore[union-attr]
        await raw.send_frame(OP_BINARY, b'{"type": "ping", "ts": "\xff"}')
        error = (await raw.read_frame()).json()  # type: ignore[union-attr]
        assert (error["type"], error["code"]) == ("error", ErrorCode.bad_json.value)
        await raw.send_json({"type": "ping", "ts": 2})
        assert (await raw.read_frame()).json() == {"type": "pong", "ts": 2}  # type: ignore[union-attr]
    finally:
        raw.close()


async def test_a_text_frame_that_is_not_utf8_is_closed_with_1007(
    jp_http_port: int, jp_base_url: str, jp_serverapp: Any, jp_fetch: Any, service: Any
) -> None:
    token = jp_serverapp.identity_provider.token
    path = jp_base_url.rstrip("/") + "/vimax/ws"
    raw = await RawWebSocket.connect(jp_http_port, path, {"Authorization": f"token {token}"})
    try:
        assert (await raw.read_frame()).json()["type"] == "welcome"  # type: ignore[union-attr]
        await raw.send_frame(OP_TEXT, b'{"type": "ping", "ts": "\xed\xa0\x80"}')
        frame = await raw.read_frame()
        assert frame is not None, "dropped without a close frame"
        assert frame.opcode == OP_CLOSE
        assert frame.close_code == CLOSE_INVALID_UTF8
        assert "UTF-8" in frame.close_reason
        await raw.send_close(CLOSE_INVALID_UTF8)
        assert await raw.read_frame() is None
    finally:
        raw.close()
    stats = json.loads((await jp_fetch("vimax/ws/stats")).body)
    assert stats["connections"] == 0


async def test_a_request_that_fails_in_the_server_answers_internal_without_its_text(
    jp_ws_fetch: Any, service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(workflow_id: str, action: Any) -> Any:
        raise RuntimeError(f"secret detail of {workflow_id}: /srv/private/db.sqlite")

    service.coordinator.control = broken
    client = await connect(jp_ws_fetch)
    error = await client.request(
        {"type": "control", "workflow_id": "w1", "action": "pause", "id": "c1"}, "error"
    )
    assert error["code"] == "internal"
    assert error["message"] == (
        "the server failed handling this request; the server log has the details"
    )
    assert "secret" not in json.dumps(error)
    assert any("secret detail" in r.getMessage() or r.exc_info for r in caplog.records)
    await still_open(client)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("after=%ED%A0%80", "Invalid unicode"),
        ("epoch=%FF", "Invalid unicode"),
        ("after=" + FIVE_THOUSAND_DIGITS, f"after must be a seq from 0 to {INT64_MAX}"),
        (f"after={INT64_MAX + 1}", f"after must be a seq from 0 to {INT64_MAX}"),
        ("after=-1", "after must be a seq"),
    ],
    ids=["after-not-utf8", "epoch-not-utf8", "after-5000-digits", "after-2**63", "negative"],
)
async def test_a_single_room_endpoint_with_a_bad_query_closes_with_1008(
    jp_http_port: int,
    jp_base_url: str,
    jp_serverapp: Any,
    jp_fetch: Any,
    service: Any,
    server_errors: list[logging.LogRecord],
    query: str,
    words: str,
) -> None:
    token = jp_serverapp.identity_provider.token
    path = jp_base_url.rstrip("/") + "/vimax/ws/coordinator?" + query
    raw = await RawWebSocket.connect(jp_http_port, path, {"Authorization": f"token {token}"})
    try:
        frame = await raw.read_frame()
        while frame is not None and frame.opcode == OP_TEXT:  # the welcome
            frame = await raw.read_frame()
        assert frame is not None, "dropped without a close frame"
        assert frame.close_code == 1008
        assert frame.close_reason.startswith("bad query: ")
        assert words in frame.close_reason
    finally:
        raw.close()
    assert server_errors == []
