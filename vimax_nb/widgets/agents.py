"""``AgentStatusCard``: one agent at a glance, drawn from a :class:`~vimax_nb.client.fleet.Fleet`.

The card holds no agent state: it reads the fleet (or, inside an
:class:`~.monitor.AgentMonitor`, the record the monitor hands it) when it draws. A card
is a single HTML widget, so a change costs one comm message. It shows what the agent's
running task waits on, and the providers its skills use, a provider that is not ready
flagged with its problem. Every text that comes from the server (name, capabilities,
task, activity, description, providers and their problems) is escaped.
"""

from __future__ import annotations

import ipywidgets as widgets
from tornado.ioloop import IOLoop

from ..client import Client
from ..client.fleet import Fleet
from ..client.view import agent_activity, format_duration, provider_label, time_of_day
from ..protocol import AgentMetrics, AgentRecord, AgentState, ProviderStatus
from . import theme
from ._redraw import MIN_INTERVAL, PanelView
from .theme import esc

__all__ = ["UNKNOWN", "AgentStatusCard", "card_html", "resolve_client"]

UNKNOWN = "unknown"
"""The status a card shows for an agent its fleet does not know."""
_NOTHING = object()  # what a card shows before its first redraw


class AgentStatusCard(PanelView):
    """A live card for agent ``agent`` (its name, or an :class:`AgentRecord`).

    Given a name, the card follows ``fleet`` (by default the shared fleet of ``client``,
    by default the default client). Given an :class:`AgentRecord` and neither ``fleet``
    nor ``client``, it shows that record until :meth:`update` hands it another.
    ``css=False`` leaves out the status dot's stylesheet, for a page that has it once
    (:data:`~.theme.AGENT_CSS`; the monitor does).
    """

    def __init__(
        self,
        agent: str | AgentRecord,
        *,
        fleet: Fleet | None = None,
        client: Client | None = None,
        interval: float = MIN_INTERVAL,
        loop: IOLoop | None = None,
        css: bool = True,
    ) -> None:
        super().__init__(interval=interval, loop=loop)
        self.css = css
        self.name = agent.name if isinstance(agent, AgentRecord) else agent
        self._record = agent if isinstance(agent, AgentRecord) else None
        if fleet is None and (client is not None or self._record is None):
            fleet = Fleet.of(resolve_client(client))
        self.fleet = fleet
        self._shown: object = _NOTHING  # the record (or None) the HTML shows
        self.html = widgets.HTML(layout=widgets.Layout(min_width="220px"))
        self.box = self.html
        if fleet is not None:
            self._listen(fleet.on_change(self._changed))
        self.flush()

    @property
    def record(self) -> AgentRecord | None:
        """The agent as the card shows it now (None when the fleet does not know it)."""
        if self.fleet is not None:
            return self.fleet.agent(self.name)
        with self._lock:
            return self._record

    @property
    def status(self) -> str:
        """The agent's state, or :data:`UNKNOWN`."""
        record = self.record
        return record.status.value if record is not None else UNKNOWN

    def update(self, record: AgentRecord, *, now: bool = False) -> None:
        """Show ``record`` (a card without a fleet); ``now`` draws at once on this thread."""
        with self._lock:
            self._record = record
            if now:
                self._dirty = True
        if now:
            self.flush()
        else:
            self._request_draw()

    def __repr__(self) -> str:
        return f"AgentStatusCard({self.name} {self.status})"

    def _draw(self) -> None:
        record = self.record
        if record == self._shown:
            return
        self._shown = record
        self.html.value = card_html(record if record is not None else self.name, css=self.css)


def card_html(agent: AgentRecord | str, *, css: bool = True) -> str:
    """An agent's card as HTML: status dot (pulsing while busy), tags, metrics; with
    ``css``, the stylesheet of the dot first. A name instead of a record is an agent
    nobody knows: status :data:`UNKNOWN`, no metrics."""
    record = agent if isinstance(agent, AgentRecord) else None
    name = agent.name if isinstance(agent, AgentRecord) else agent
    state = record.status if record is not None else None
    status = state.value if state is not None else UNKNOWN
    metrics = record.metrics if record is not None else AgentMetrics()
    capabilities = record.capabilities if record is not None else []
    description = record.description if record is not None else ""
    color = theme.color_of_agent(state)
    pulse = " vimax-pulse" if state == AgentState.busy else ""
    tags = "".join(f"<span style='{theme.TAG_STYLE}'>{esc(c)}</span>" for c in capabilities)
    tags = tags or f"<small style='color:{theme.GREY}'>no capabilities</small>"
    average = metrics.avg_execution_ms
    rows = [
        ("done", str(metrics.tasks_completed)),
        ("failed", str(metrics.tasks_failed)),
        ("error rate", f"{metrics.error_rate:.1%}"),
        ("avg time", format_duration(average / 1000, "fine") if average > 0 else "\N{EM DASH}"),
        ("task", metrics.current_task or "\N{EM DASH}"),
    ]
    cells = "".join(
        f"<tr><td style='color:{theme.GREY};padding-right:8px'>{label}</td>"
        f"<td>{esc(value)}</td></tr>"
        for label, value in rows
    )
    beat = metrics.last_heartbeat
    heartbeat = (
        f"<tr><td style='color:{theme.GREY};padding-right:8px'>heartbeat</td>"
        f"<td title='{esc(beat or '')}'>{esc(time_of_day(beat) or 'never')}</td></tr>"
    )
    activity = agent_activity(record) if record is not None else None
    waiting = (
        f"<div class='vimax-activity' style='color:{theme.BLUE}'>&#8987; "
        f"<small>{esc(activity)}</small></div>"
        if activity
        else ""
    )
    providers = "".join(_provider_html(p) for p in (record.providers if record else []))
    return (
        f"{theme.AGENT_CSS if css else ''}<div class='vimax-agent' style='{theme.CARD_STYLE}' "
        f"title='{esc(description)}'>"
        f"<div><span class='vimax-dot{pulse}' style='background:{color}'></span>"
        f"<b>{esc(name)}</b> <small style='color:{color}'>{esc(status)}</small></div>"
        f"<div>{tags}</div>"
        f"<table style='border-collapse:collapse;margin-top:3px'>{cells}{heartbeat}</table>"
        f"{waiting}{providers}"
        "</div>"
    )


def _provider_html(status: ProviderStatus) -> str:
    """One provider of a card: a check when it is ready; else a warning and its problem."""
    label = f"<small>{esc(provider_label(status))}</small>"
    if status.ready:
        return (
            f"<div class='vimax-provider'><span style='color:{theme.GREEN}'>&#10003;</span> "
            f"{label}</div>"
        )
    problem = status.problem or "no reason given"
    return (
        f"<div class='vimax-provider vimax-not-ready' style='color:{theme.RED}'>"
        f"&#9888; {label} <small><b>not ready:</b> {esc(problem)}</small></div>"
    )


def resolve_client(client: Client | None = None) -> Client:
    """``client``, else the default client, else :func:`~vimax_nb.client.connect`'s."""
    if client is not None:
        return client
    from ..client.discovery import connect, default_client

    return default_client() or connect()
