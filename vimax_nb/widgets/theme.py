"""Colours and the small bits of CSS the vimax-nb widgets share, in one place."""

from __future__ import annotations

__all__ = [
    "BADGE_STYLE",
    "CONNECTION_COLORS",
    "GREY",
    "LOG_STYLE",
    "STAGE_ICONS",
    "STATE_COLORS",
    "color_of_connection",
    "color_of_state",
]

GREEN = "#2e7d32"
RED = "#c62828"
BLUE = "#1565c0"
AMBER = "#ef8f00"
GREY = "#757575"

STATE_COLORS: dict[str, str] = {
    "completed": GREEN,
    "failed": RED,
    "running": BLUE,
    "paused": AMBER,
    "interrupted": AMBER,
    "pending": GREY,
    "canceled": GREY,
    "offline": GREY,
}

CONNECTION_COLORS: dict[str, str] = {
    "open": GREEN,
    "connecting": AMBER,
    "offline": GREY,
    "closed": GREY,
}

# (icon, colour) per stage status.
STAGE_ICONS: dict[str, tuple[str, str]] = {
    "done": ("&#10003;", GREEN),
    "running": ("&#9679;", BLUE),
    "pending": ("&#9675;", GREY),
}

BADGE_STYLE = (
    "display:inline-block;padding:1px 8px;border-radius:9px;color:white;"
    "font-size:0.85em;font-weight:600;background:{color}"
)
LOG_STYLE = "max-height:16em;overflow-y:auto;margin:0;font-size:0.8em;white-space:pre-wrap"


def color_of_state(state: str) -> str:
    """The badge colour of a workflow state (grey for anything unknown)."""
    return STATE_COLORS.get(state, GREY)


def color_of_connection(state: str) -> str:
    """The indicator colour of a connection state (grey for anything unknown)."""
    return CONNECTION_COLORS.get(state, GREY)
