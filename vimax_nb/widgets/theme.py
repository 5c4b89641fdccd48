"""Colours, small bits of CSS and the escaping helper the vimax-nb widgets share."""

from __future__ import annotations

import html

from ..client import ConnectionState
from ..client.view import RunStatus, StageStatus
from ..protocol import AgentState, WorkflowState

__all__ = [
    "AGENT_COLORS",
    "AGENT_CSS",
    "BADGE_STYLE",
    "CARD_STYLE",
    "CONNECTION_COLORS",
    "GREY",
    "LOG_STYLE",
    "OFFLINE_COLOR",
    "STAGE_ICONS",
    "STATE_COLORS",
    "TAG_STYLE",
    "UNKNOWN_AGENT_COLOR",
    "color_of_agent",
    "color_of_connection",
    "color_of_status",
    "esc",
]

GREEN = "#2e7d32"
RED = "#c62828"
BLUE = "#1565c0"
AMBER = "#ef8f00"
GREY = "#757575"

# The badge colour of each workflow state.
STATE_COLORS: dict[WorkflowState, str] = {
    WorkflowState.completed: GREEN,
    WorkflowState.failed: RED,
    WorkflowState.running: BLUE,
    WorkflowState.paused: AMBER,
    WorkflowState.interrupted: AMBER,
    WorkflowState.pending: GREY,
    WorkflowState.canceled: GREY,
}
# The badge colour of a run shown as offline (client.view.OFFLINE: not a workflow state).
OFFLINE_COLOR = GREY

# The dot colour of each agent state, and of an agent nobody knows.
AGENT_COLORS: dict[AgentState, str] = {
    AgentState.idle: GREEN,
    AgentState.busy: BLUE,
    AgentState.error: RED,
    AgentState.offline: GREY,
}
UNKNOWN_AGENT_COLOR = GREY

# The indicator colour of each connection state.
CONNECTION_COLORS: dict[ConnectionState, str] = {
    ConnectionState.open: GREEN,
    ConnectionState.connecting: AMBER,
    ConnectionState.offline: GREY,
    ConnectionState.closed: GREY,
}

# (icon, colour) per stage status.
STAGE_ICONS: dict[StageStatus, tuple[str, str]] = {
    "done": ("&#10003;", GREEN),
    "running": ("&#9679;", BLUE),
    "pending": ("&#9675;", GREY),
    "paused": ("&#10074;&#10074;", AMBER),
    "interrupted": ("&#10074;&#10074;", AMBER),
    "canceled": ("&#10007;", GREY),
    "failed": ("&#10007;", RED),
}

BADGE_STYLE = (
    "display:inline-block;padding:1px 8px;border-radius:9px;color:white;white-space:nowrap;"
    "font-size:0.85em;font-weight:600;background:{color}"
)
LOG_STYLE = "max-height:16em;overflow-y:auto;margin:0;font-size:0.8em;white-space:pre-wrap"
CARD_STYLE = (
    "border:1px solid #d0d0d0;border-radius:6px;padding:6px 10px;line-height:1.4;"
    "font-size:0.9em;min-width:200px"
)
TAG_STYLE = (
    "display:inline-block;margin:1px 3px 1px 0;padding:0 6px;border-radius:8px;"
    "background:#eceff1;color:#37474f;font-size:0.85em"
)
# The status dot of an agent card; a busy agent's dot pulses (a CSS animation).
AGENT_CSS = (
    "<style>@keyframes vimax-pulse{0%{box-shadow:0 0 0 0 rgba(21,101,192,.6)}"
    "70%{box-shadow:0 0 0 7px rgba(21,101,192,0)}100%{box-shadow:0 0 0 0 rgba(21,101,192,0)}}"
    ".vimax-dot{display:inline-block;width:10px;height:10px;border-radius:50%;"
    "margin-right:5px;vertical-align:middle}"
    ".vimax-pulse{animation:vimax-pulse 1.2s ease-out infinite}</style>"
)


def esc(text: object) -> str:
    """``text`` as HTML text: ``<``, ``>``, ``&`` and both quotes escaped."""
    return html.escape(str(text), quote=True)


def color_of_status(status: RunStatus) -> str:
    """The badge colour of a run's shown status: its state's, or :data:`OFFLINE_COLOR`."""
    return STATE_COLORS[status] if isinstance(status, WorkflowState) else OFFLINE_COLOR


def color_of_agent(status: AgentState | None) -> str:
    """The dot colour of an agent state; :data:`UNKNOWN_AGENT_COLOR` for None (an agent
    nobody knows)."""
    return UNKNOWN_AGENT_COLOR if status is None else AGENT_COLORS[status]


def color_of_connection(state: ConnectionState) -> str:
    """The indicator colour of a connection state."""
    return CONNECTION_COLORS[state]
