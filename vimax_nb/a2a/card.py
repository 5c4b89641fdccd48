"""Agent cards: vimax-nb's (the A2A endpoint) and one per internal agent."""

from __future__ import annotations

from typing import Any

from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    APIKeySecurityScheme,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from google.protobuf.json_format import MessageToDict

from .._version import __version__
from ..coordinator import Agent

NAME = "vimax-nb"
DESCRIPTION = (
    "Makes short films with ViMax's agents (screenwriter, character extractor, portrait "
    "painter, storyboard artist, camera director, frame painter, video generator, "
    "editor): send an idea in plain words, or a script, and follow the workflow's stages "
    "to a story, a script, storyboard frames and an MP4. Tasks are vimax-nb workflows: "
    "the same ids as its REST API, notebooks and CLI."
)
INPUT_MODES = ["text/plain", "application/json"]
OUTPUT_MODES = ["text/plain", "application/json", "image/png", "video/mp4"]
TOKEN_SCHEME = "jupyterToken"
TOKEN_HEADER_SCHEME = "jupyterTokenHeader"

SKILLS = [
    AgentSkill(
        id="idea2video",
        name="Idea to video",
        description=(
            "An idea in plain words becomes a story, characters with portraits, a script, "
            "storyboard frames, clips and the final video. The words may ask for the "
            "number of scenes and shots, a style, the audience, the frame size, frames "
            'per second, seconds per shot and a seed; a data part {"kind": '
            '"idea2video", "params": {...}} sets any parameter exactly.'
        ),
        tags=["video", "story", "animation", "idea"],
        examples=[
            "A lighthouse keeper befriends a whale",
            "a three-scene watercolor video about a fox who learns to fly, for children",
            "a vertical 30-second anime clip of a robot learning to paint, seed 7",
        ],
        input_modes=["text/plain", "application/json"],
        output_modes=OUTPUT_MODES,
    ),
    AgentSkill(
        id="script2video",
        name="Script to video",
        description=(
            "A script (scene headings such as INT. KITCHEN - NIGHT or 'Scene 2:' make "
            "scenes) becomes characters with portraits, storyboard frames, clips and the "
            "final video. Send it as text, or as a text file part; text next to a file is "
            "the user requirement."
        ),
        tags=["video", "script", "screenplay"],
        examples=[
            "INT. KITCHEN - NIGHT\nANNA pours tea. The kettle whistles.\n\n"
            "EXT. GARDEN - DAWN\nANNA watches the sun rise.",
            "Scene 1: A girl finds a map in the attic.\nScene 2: She follows it to the sea.",
        ],
        input_modes=["text/plain", "application/json"],
        output_modes=OUTPUT_MODES,
    ),
]


def _security() -> tuple[dict[str, SecurityScheme], list[SecurityRequirement]]:
    """Jupyter's token auth: ``Authorization: token <t>`` or ``Authorization: Bearer
    <t>``; either scheme is enough."""
    schemes = {
        TOKEN_SCHEME: SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="bearer",
                description="The Jupyter server's token (or a JupyterHub API token), sent "
                "as 'Authorization: Bearer <token>'",
            )
        ),
        TOKEN_HEADER_SCHEME: SecurityScheme(
            api_key_security_scheme=APIKeySecurityScheme(
                location="header",
                name="Authorization",
                description="The same token as Jupyter's clients send it: "
                "'Authorization: token <token>'",
            )
        ),
    }
    requirements = [
        SecurityRequirement(schemes={TOKEN_SCHEME: StringList()}),
        SecurityRequirement(schemes={TOKEN_HEADER_SCHEME: StringList()}),
    ]
    return schemes, requirements


def service_card(rpc_url: str, documentation_url: str = "") -> AgentCard:
    """vimax-nb's card: its JSON-RPC endpoint at ``rpc_url`` (A2A 1.0, and the 0.3
    method names), streaming, Jupyter's token auth, and its two skills."""
    schemes, requirements = _security()
    return AgentCard(
        name=NAME,
        description=DESCRIPTION,
        version=__version__,
        documentation_url=documentation_url,
        supported_interfaces=[
            AgentInterface(url=rpc_url, protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=rpc_url, protocol_binding="JSONRPC", protocol_version="0.3"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        security_schemes=schemes,
        security_requirements=requirements,
        default_input_modes=INPUT_MODES,
        default_output_modes=OUTPUT_MODES,
        skills=SKILLS,
    )


def service_card_json(rpc_url: str, documentation_url: str = "") -> dict[str, Any]:
    """The card as served: A2A 1.0's JSON, with the fields 0.3 clients read added."""
    return agent_card_to_dict(service_card(rpc_url, documentation_url))


def agent_card(agent: Agent, rpc_url: str) -> AgentCard:
    """The card of one of the coordinator's agents. It is not reached on its own: its
    interface is the coordinator's endpoint, where a message starts a whole workflow in
    which this agent takes its part."""
    described = agent.card()
    schemes, requirements = _security()
    return AgentCard(
        name=described.name,
        description=(
            f"{described.description or described.name}. One of vimax-nb's agents: it "
            f"works within the workflows commissioned from the vimax-nb agent at {rpc_url}."
        ),
        version=described.version,
        supported_interfaces=[
            AgentInterface(url=rpc_url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        security_schemes=schemes,
        security_requirements=requirements,
        default_input_modes=["application/json"],
        default_output_modes=OUTPUT_MODES,
        skills=[
            AgentSkill(
                id=s.id,
                name=s.name or s.id,
                description=s.description or s.name or s.id,
                tags=s.tags or [described.name],
            )
            for s in described.skills
        ],
    )


def agent_card_json(agent: Agent, rpc_url: str) -> dict[str, Any]:
    """An agent's card as served (A2A 1.0 JSON)."""
    result: dict[str, Any] = MessageToDict(agent_card(agent, rpc_url))
    return result
