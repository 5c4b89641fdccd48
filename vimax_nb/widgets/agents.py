"""``AgentStatusCard``: one agent at a glance, drawn from a :class:`~vimax_nb.client.fleet.Fleet`.

The card holds no agent state: it reads the fleet (or, inside an
:class:`~.monitor.AgentMonitor`, the value the monitor hands it) when it draws. A card
is a single HTML widget, so a change costs one comm message. Every text that comes
from the server (name, capabilities, task, description) is escaped.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import ipywidgets as widgets
from tornado.ioloop import IOLoop

from ..client.fleet import AgentInfo, Fleet
from . import theme
from ._redraw import MIN_INTERVAL, LiveView
from .theme import esc

__all__ = ["AgentStatusCard", "card_html", "resolve_client"]


class AgentStatusCard(LiveView):
    """A live card for agent ``agent`` (its name, or an :class:`AgentInfo`).

    Given a name, the card follows ``fleet`` (by default the shared fleet of ``client``,
    by default the default client). Given an :class:`AgentInfo` and neither ``fleet``
    nor ``client``, it shows that value until :meth:`update` hands it another.
    ``css=False`` leaves out the status dot's stylesheet, for a page that has it once
    (:data:`~.theme.AGENT_CSS`; the monitor does).
    """

    def __init__(
        self,
        agent: str | AgentInfo,
        *,
        fleet: Fleet | None = None,
        client: Any = None,
        interval: float = MIN_INTERVAL,
        loop: IOLoop | None = None,
        css: bool = True,
    ) -> None:
        super().__init__(interval=interval, loop=loop)
        self.css = css
        static = isinstance(agent, AgentInfo)
        self.name = agent.name if isinstance(agent, AgentInfo) else str(agent)
        self._info: AgentInfo | None = agent if isinstance(agent, AgentInfo) else None
        if fleet is None and (client is not None or not static):
            fleet = Fleet.of(resolve_client(client))
        self.fleet = fleet
        self._shown: AgentInfo | None = None
        self.html = widgets.HTML(layout=widgets.Layout(min_width="220px"))
        self.box = self.html
        self._remove = fleet.on_change(self._on_change) if fleet is not None else None
        self.flush()

    @property
    def info(self) -> AgentInfo | None:
        """The agent as the card shows it now (None when the fleet does not know it)."""
        if self.fleet is not None:
            return self.fleet.agent(self.name)
        with self._lock:
            return self._info

    @property
    def status(self) -> str:
        info = self.info
        return info.status if info is not None else "unknown"

    def update(self, info: AgentInfo, *, now: bool = False) -> None:
        """Show ``info`` (a card without a fleet); ``now`` draws at once on this thread."""
        if not now:
            with self._lock:
                self._info = info
            self._request_draw()
            return
        with self._lock:
            self._info = info
            self._dirty = True
        self.flush()

    def _on_change(self, _fleet: Fleet) -> None:
        self._request_draw()

    def _detach(self) -> None:
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()

    def __repr__(self) -> str:
        return f"AgentStatusCard({self.name} {self.status})"

    def _draw(self) -> None:
        info = self.info or AgentInfo(self.name, status="unknown")
        if info == self._shown:
            return
        self._shown = info
        self.html.value = card_html(info, css=self.css)


def card_html(info: AgentInfo, *, css: bool = True) -> str:
    """An agent's card as HTML: status dot (pulsing while busy), tags, metrics; with
    ``css``, the stylesheet of the dot first."""
    color = theme.color_of_agent(info.status)
    pulse = " vimax-pulse" if info.status == "busy" else ""
    tags = "".join(f"<span style='{theme.TAG_STYLE}'>{esc(c)}</span>" for c in info.capabilities)
    tags = tags or f"<small style='color:{theme.GREY}'>no capabilities</small>"
    rows = [
        ("done", str(info.tasks_completed)),
        ("failed", str(info.tasks_failed)),
        ("error rate", f"{info.error_rate:.1%}"),
        ("avg time", _duration_ms(info.avg_execution_ms)),
        ("task", info.current_task or "\N{EM DASH}"),
    ]
    cells = "".join(
        f"<tr><td style='color:{theme.GREY};padding-right:8px'>{label}</td>"
        f"<td>{esc(value)}</td></tr>"
        for label, value in rows
    )
    beat = info.last_heartbeat
    heartbeat = (
        f"<tr><td style='color:{theme.GREY};padding-right:8px'>heartbeat</td>"
        f"<td title='{esc(beat or '')}'>{esc(_clock(beat))}</td></tr>"
    )
    return (
        f"{theme.AGENT_CSS if css else ''}<div class='vimax-agent' style='{theme.CARD_STYLE}' "
        f"title='{esc(info.description)}'>"
        f"<div><span class='vimax-dot{pulse}' style='background:{color}'></span>"
        f"<b>{esc(info.name)}</b> <small style='color:{color}'>{esc(info.status)}</small></div>"
        f"<div>{tags}</div>"
        f"<table style='border-collapse:collapse;margin-top:3px'>{cells}{heartbeat}</table>"
        "</div>"
    )


def resolve_client(client: Any = None) -> Any:
    """``client``, else the default client, else :func:`~vimax_nb.client.connect`'s."""
    if client is not None:
        return client
    from ..client.discovery import connect, default_client

    return default_client() or connect()


def _duration_ms(ms: float) -> str:
    if ms <= 0:
        return "\N{EM DASH}"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s"


def _clock(timestamp: str | None) -> str:
    """An ISO 8601 time as the local time of day ("never" when there is none)."""
    if not timestamp:
        return "never"
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    return time.strftime("%H:%M:%S", time.localtime(moment.timestamp()))
