"""The agent cards: vimax-nb's, found where A2A clients look, and one per agent."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import a2a_client


async def test_the_card_says_how_to_reach_and_use_vimax(
    endpoint: str, token: str, service: Any
) -> None:
    async with a2a_client(endpoint, token) as (_client, http, card):
        assert card.name == "vimax-nb"
        assert card.version
        assert card.capabilities.streaming
        assert not card.capabilities.push_notifications
        interfaces = {
            (i.protocol_binding, i.protocol_version, i.url) for i in card.supported_interfaces
        }
        assert ("JSONRPC", "1.0", endpoint) in interfaces  # under the server's base_url
        assert {s.id for s in card.skills} == {"idea2video", "script2video"}
        assert all(s.examples for s in card.skills)
        for mode in ("text/plain", "application/json", "video/mp4", "image/png"):
            assert mode in [*card.default_input_modes, *card.default_output_modes]
        schemes = card.security_schemes
        assert schemes["jupyterToken"].http_auth_security_scheme.scheme == "bearer"
        assert schemes["jupyterTokenHeader"].api_key_security_scheme.name == "Authorization"

        linked = (await http.get(endpoint)).json()  # GET on the endpoint gives the card too
        assert linked == (await http.get(endpoint + "/.well-known/agent-card.json")).json()
        assert linked["url"] == endpoint  # 0.3 clients read this field


async def test_each_agent_has_its_own_card(endpoint: str, token: str, service: Any) -> None:
    names = [agent.name for agent in service.coordinator.agents]
    assert "screenwriter" in names
    base = endpoint.removesuffix("a2a") + "api/agents"
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"}) as http:
        for name in names:
            card = (await http.get(f"{base}/{name}/card")).json()
            assert card["name"] == name
            assert card["skills"], name
            assert card["supportedInterfaces"][0]["url"] == endpoint
        missing = await http.get(f"{base}/nosuchagent/card")
        assert missing.status_code == 404
        assert "nosuchagent" in missing.json()["message"]
        record = (await http.get(f"{base}/screenwriter")).json()  # the record is still there
        assert record["name"] == "screenwriter"
