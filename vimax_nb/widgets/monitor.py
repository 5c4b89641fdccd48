"""``AgentMonitor``: a live dashboard of the coordinator and every agent.

Under the coordinator's figures, the executor: where tasks run (``local · 4 threads``,
``dask · 2 workers · 4 threads``), a link to the cluster's dashboard and, in red, why it
cannot take tasks when it cannot. Like the other panels it only draws: the state is a
:class:`~vimax_nb.client.fleet.Fleet` (one per client, shared by every monitor and card
of that client). A redraw reads the fleet once, consistently, and touches only what
changed: a card's HTML is rebuilt only when its agent changed, and the grid's children
only when the set of visible agents did. Redraws are coalesced to at most ~10 a second
and end on the exact final state.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets
from tornado.ioloop import IOLoop

from ..client import Client
from ..client.fleet import Fleet
from ..client.view import (
    AGENT_FILTERS,
    agent_counts,
    dashboard_link,
    executor_line,
    executor_parts,
    summary,
)
from ..protocol import AgentRecord, CoordinatorMetricsEvent, ExecutorInfo
from . import theme
from ._redraw import MIN_INTERVAL, PanelView
from .agents import AgentStatusCard, resolve_client
from .theme import esc

__all__ = ["AgentMonitor"]


class AgentMonitor(PanelView):
    """Coordinator metrics, the executor, filter buttons with live counts, a search box
    and a grid of :class:`AgentStatusCard`.

    ``client`` defaults to the default client (:func:`~vimax_nb.client.connect`);
    ``fleet`` (a :class:`Fleet`) replaces the client's shared fleet; ``card_width`` is
    the least width of a grid column (the grid wraps to the panel's width).
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        fleet: Fleet | None = None,
        interval: float = MIN_INTERVAL,
        loop: IOLoop | None = None,
        card_width: str = "240px",
    ) -> None:
        super().__init__(interval=interval, loop=loop)
        self.fleet = fleet if fleet is not None else Fleet.of(resolve_client(client))
        self._filter = "all"
        self._query = ""
        self._cards: dict[str, AgentStatusCard] = {}
        self._shown: tuple[str, ...] = ()
        self._cards_lock = threading.Lock()

        self.stylesheet = widgets.HTML(theme.AGENT_CSS)  # once for every card
        self.metrics_html = widgets.HTML()
        self.connection_indicator = widgets.HTML()
        self.executor_html = widgets.HTML()
        self.buttons = {
            name: widgets.Button(description=f"{name} (0)", layout=widgets.Layout(width="auto"))
            for name in AGENT_FILTERS
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _b, name=name: self.set_filter(name))
        self.search = widgets.Text(
            placeholder="search name or capability",
            continuous_update=True,
            layout=widgets.Layout(width="240px"),
        )
        self.search.observe(self._on_search, names="value")
        self.notice = widgets.HTML()
        self.grid = widgets.GridBox(
            layout=widgets.Layout(
                grid_template_columns=f"repeat(auto-fill, minmax({card_width}, 1fr))",
                grid_gap="8px",
                width="100%",
            )
        )
        self.empty = widgets.HTML()
        self.box = widgets.VBox(
            [
                self.stylesheet,
                widgets.HBox([self.metrics_html, self.connection_indicator]),
                self.executor_html,
                widgets.HBox([*self.buttons.values(), self.search]),
                self.notice,
                self.grid,
                self.empty,
            ]
        )
        self.box.add_class("vimax-monitor")
        self._listen(self.fleet.on_change(self._changed))
        self.flush()

    # -- what is shown -----------------------------------------------------------------

    @property
    def filter(self) -> str:
        """The status filter: one of :data:`~vimax_nb.client.view.AGENT_FILTERS`."""
        return self._filter

    @property
    def query(self) -> str:
        """The search text: words that must each be in the name or a capability."""
        return self._query

    def set_filter(self, name: str) -> None:
        """Show the agents in status ``name`` (``"all"`` for every agent)."""
        if name not in AGENT_FILTERS:
            raise ValueError(f"unknown filter {name!r}: use one of {', '.join(AGENT_FILTERS)}")
        with self._lock:
            self._filter = name
        self._request_draw()

    def set_query(self, text: str) -> None:
        """Search agents by name or capability (what typing in the search box does)."""
        self.search.value = text  # the observer takes it from there

    def _on_search(self, change: dict[str, Any]) -> None:
        with self._lock:
            self._query = str(change.get("new") or "")
        self._request_draw()

    @property
    def cards(self) -> list[AgentStatusCard]:
        """The cards in the grid now, in order."""
        with self._cards_lock:
            return [self._cards[name] for name in self._shown]

    def __repr__(self) -> str:
        agents, metrics = self.fleet.snapshot()
        text = summary(agents)
        if metrics.executor is not None:  # None: a server that does not say
            text += f"; executor: {executor_line(metrics.executor)}"
        return f"AgentMonitor({text})"

    # -- listening ---------------------------------------------------------------------

    def _detach(self) -> None:
        with self._cards_lock:
            cards, self._cards = list(self._cards.values()), {}
        for card in cards:
            card.close()

    # -- drawing -----------------------------------------------------------------------

    def _draw(self) -> None:
        agents, metrics = self.fleet.snapshot()
        with self._lock:
            chosen, query = self._filter, self._query
        counts = agent_counts(agents)
        for name, button in self.buttons.items():
            button.description = f"{name} ({counts[name]})"
            button.button_style = "info" if name == chosen else ""
        words = query.lower().split()
        visible = [
            a for a in agents if (chosen == "all" or a.status == chosen) and _matches(a, words)
        ]
        self._draw_cards(agents, visible)
        self.metrics_html.value = _metrics_html(metrics)
        self.executor_html.value = _executor_html(metrics.executor)
        state = self.fleet.connection_state
        self.connection_indicator.value = (
            ""
            if state is None
            else f"<span style='color:{theme.color_of_connection(state)};white-space:nowrap' "
            "title='connection'>"
            f"&nbsp;&#9679; {esc(state)}</span>"
        )
        error = self.fleet.error
        self.notice.value = f"<span style='color:{theme.RED}'>{esc(error)}</span>" if error else ""
        self.empty.value = "" if visible else _empty_text(chosen, query, bool(agents))

    def _draw_cards(self, agents: list[AgentRecord], visible: list[AgentRecord]) -> None:
        names = {a.name for a in agents}
        with self._cards_lock:
            gone = [self._cards.pop(n) for n in list(self._cards) if n not in names]
            for record in visible:
                card = self._cards.get(record.name)
                if card is None:
                    self._cards[record.name] = AgentStatusCard(
                        record, interval=self.interval, css=False
                    )
                else:
                    card.update(record, now=True)
            shown = tuple(a.name for a in visible)
            if shown != self._shown:
                self._shown = shown
                self.grid.children = [self._cards[name].box for name in shown]
        for card in gone:
            card.close()


def _matches(agent: AgentRecord, words: list[str]) -> bool:
    """Whether each word is in the agent's name or one of its capabilities."""
    haystack = [agent.name.lower(), *(c.lower() for c in agent.capabilities)]
    return all(any(word in text for text in haystack) for word in words)


def _metrics_html(m: CoordinatorMetricsEvent) -> str:
    items = [
        f"workflows {m.active_workflows} active / {m.total_workflows}",
        f"queue {m.queue_size}",
        f"agents {m.healthy_agents}/{m.registered_agents} healthy",
        f"{m.tasks_per_second:.1f} tasks/s",
        f"dead letters {m.dead_letters}",
        f"connections {m.connections}",
    ]
    sep = f" <span style='color:{theme.GREY}'>&middot;</span> "
    return "<b>Coordinator</b>&nbsp; " + sep.join(items)


def _executor_html(info: ExecutorInfo | None) -> str:
    """``Executor dask · 2 workers · 4 threads · dashboard`` (the dashboard a link only
    when it is an http(s) URL, see :func:`~vimax_nb.client.view.dashboard_link`), the
    problem in red; ``""`` when the server does not say. Every value is escaped."""
    if info is None:
        return ""
    sep = f" <span style='color:{theme.GREY}'>&middot;</span> "
    items = [esc(part) for part in executor_parts(info)]
    link = dashboard_link(info)
    if link is not None:
        items.append(
            f"<a href='{esc(link)}' target='_blank' rel='noopener noreferrer' "
            f"title='{esc(link)}' style='color:{theme.BLUE};text-decoration:underline'>"
            "dashboard</a>"
        )
    elif info.dashboard:  # not an http(s) URL: shown, never linked
        items.append(f"dashboard {esc(info.dashboard)}")
    if info.problem:
        items.append(
            f"<span class='vimax-problem' style='color:{theme.RED}'>{esc(info.problem)}</span>"
        )
    title = f" title='scheduler {esc(info.address)}'" if info.address else ""
    return f"<span class='vimax-executor'{title}><b>Executor</b>&nbsp; {sep.join(items)}</span>"


def _empty_text(chosen: str, query: str, any_agents: bool) -> str:
    if not any_agents:
        text = "No agents yet."
    else:
        which = "" if chosen == "all" else f"{chosen} "
        text = f"No {which}agents match '{query}'." if query.strip() else f"No {which}agents."
    return f"<i style='color:{theme.GREY}'>{esc(text)}</i>"
