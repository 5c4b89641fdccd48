"""A Jupyter server with vimax-nb, and the official a2a-sdk client to talk to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.types import AgentCard, Message, Part, Role, SendMessageRequest, StreamResponse

from ..server.conftest import (  # noqa: F401  (fixtures)
    Gate,
    install_toy,
    jp_server_config,
    service,
    vimax_workdir,
)

#: The toy workflow, held in its first task until the test opens the gate.
HELD = {"kind": "story", "params": {"shots": 1}}
#: A quick, small film.
SMALL = {"width": 160, "height": 96, "fps": 6, "seconds_per_shot": 1, "shots_per_scene": 2}


@pytest.fixture
def toy(service: Any) -> Iterator[Gate]:  # noqa: F811  (the fixture above)
    """The toy 'story' pipeline, its first task held until the gate opens."""
    gate = Gate()
    install_toy(service.coordinator, gate)
    try:
        yield gate
    finally:
        gate.opened.set()


@pytest.fixture
def endpoint(jp_fetch: Any, jp_http_port: int, jp_base_url: str) -> str:
    """The URL of vimax-nb's A2A endpoint (``jp_fetch`` starts the server listening)."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}vimax/a2a"


@pytest.fixture
def token(jp_serverapp: Any) -> str:
    token: str = jp_serverapp.identity_provider.token
    return token


def user_message(text: str | None = None, data: dict[str, Any] | None = None) -> Message:
    """A client's message: ``text`` in words and/or ``data`` as a data part."""
    parts = []
    if text is not None:
        parts.append(Part(text=text))
    if data is not None:
        part = Part(media_type="application/json")
        part.data.struct_value.update(data)
        parts.append(part)
    return Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=parts)


def request(text: str | None = None, data: dict[str, Any] | None = None) -> SendMessageRequest:
    return SendMessageRequest(message=user_message(text, data))


@asynccontextmanager
async def a2a_client(
    endpoint: str, token: str | None, *, streaming: bool = True, polling: bool = False
) -> AsyncIterator[tuple[Client, httpx.AsyncClient, AgentCard]]:
    """The a2a-sdk client of the server's agent, found through its card, sending
    ``token`` as Jupyter's clients do."""
    headers = {"Authorization": f"token {token}"} if token else {}
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=None)) as http:
        card = await A2ACardResolver(http, endpoint).get_agent_card()
        config = ClientConfig(httpx_client=http, streaming=streaming, polling=polling)
        client = ClientFactory(config).create(card)
        try:
            yield client, http, card
        finally:
            await client.close()


def kind_of(event: StreamResponse) -> str:
    kind: str = event.WhichOneof("payload")
    return kind


def state_of(event: StreamResponse) -> int | None:
    """The task state an event carries (a task or a status update), else None."""
    kind = kind_of(event)
    if kind == "task":
        state: int = event.task.status.state
        return state
    if kind == "status_update":
        state = event.status_update.status.state
        return state
    return None


def text_of(event: StreamResponse) -> str:
    """The status message of a task or a status update ("" for other events)."""
    kind = kind_of(event)
    status = event.task.status if kind == "task" else event.status_update.status
    if kind not in ("task", "status_update") or not status.message.parts:
        return ""
    text: str = status.message.parts[0].text
    return text


async def read_until(stream: AsyncIterator[StreamResponse], done: Any) -> list[StreamResponse]:
    """The events of ``stream`` up to and including the first for which ``done(event)``."""
    seen: list[StreamResponse] = []
    async for event in stream:
        seen.append(event)
        if done(event):
            return seen
    raise AssertionError(f"the stream ended before the awaited event; it sent {seen}")
