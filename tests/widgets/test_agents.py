"""AgentStatusCard and AgentMonitor against a Fleet of a fake client (no kernel, no server)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from IPython.lib.pretty import pretty

from vimax_nb.client.fleet import AgentInfo, Fleet
from vimax_nb.widgets import AgentMonitor, AgentStatusCard, theme
from vimax_nb.widgets.agents import card_html

from .fakes import (
    EVIL,
    TIMEOUT,
    FakeFleetClient,
    Watcher,
    agent_record,
    coalescing_bound,
    eight_agents,
    html_values,
)


def status(client: FakeFleetClient, name: str, state: str, **metrics: Any) -> None:
    client.connection.emit(
        f"agent:{name}", type="agent_status", agent_name=name, status=state, metrics=metrics
    )


def shown(monitor: AgentMonitor) -> list[str]:
    return [card.name for card in monitor.cards]


# -- the card ---------------------------------------------------------------------------


def test_card_shows_every_metric() -> None:
    info = AgentInfo(
        "screenwriter",
        "busy",
        ("script", "story"),
        tasks_completed=12,
        tasks_failed=3,
        error_rate=0.2,
        avg_execution_ms=1500.0,
        current_task="wf-7/script",
        last_heartbeat="2030-01-01T12:00:00+00:00",
    )
    card = AgentStatusCard(info)
    html = card.html.value
    assert "<b>screenwriter</b>" in html
    assert "vimax-dot vimax-pulse" in html  # busy: the dot pulses
    assert f"background:{theme.AGENT_COLORS['busy']}" in html
    assert html.count(f"<span style='{theme.TAG_STYLE}'>") == 2
    for label, value in [
        ("done", "12"),
        ("failed", "3"),
        ("error rate", "20.0%"),
        ("avg time", "1.5 s"),
        ("task", "wf-7/script"),
    ]:
        assert f">{label}</td><td>{value}</td>" in html
    assert "title='2030-01-01T12:00:00+00:00'" in html
    assert repr(card) == "AgentStatusCard(screenwriter busy)"
    assert pretty(card) == "AgentStatusCard(screenwriter busy)"
    assert card._repr_mimebundle_()["text/plain"] == "AgentStatusCard(screenwriter busy)"

    card.update(AgentInfo("screenwriter", "idle"), now=True)
    html = card.html.value
    assert "class='vimax-dot'" in html  # idle: no pulse
    assert f"background:{theme.AGENT_COLORS['idle']}" in html
    assert "no capabilities" in html
    assert ">avg time</td><td>\N{EM DASH}</td>" in html
    assert ">heartbeat</td><td title=''>never</td>" in html


def test_card_escapes_agent_text() -> None:
    html = card_html(
        AgentInfo(EVIL, EVIL, (EVIL,), description=EVIL, current_task=EVIL, last_heartbeat=EVIL)
    )
    assert "<img" not in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 5


def test_a_live_card_follows_its_agent_in_the_fleet() -> None:
    client = FakeFleetClient(eight_agents())
    card = AgentStatusCard("editor", fleet=Fleet(client))
    watcher = Watcher(card)
    assert repr(card) == "AgentStatusCard(editor idle)"
    status(client, "editor", "busy", tasks_completed=2, current_task="wf-1/edit")
    watcher.until(lambda: "vimax-dot vimax-pulse" in card.html.value)
    assert ">done</td><td>2</td>" in card.html.value
    assert repr(card) == "AgentStatusCard(editor busy)"
    assert repr(AgentStatusCard("nobody", client=client)) == "AgentStatusCard(nobody unknown)"


# -- the monitor ------------------------------------------------------------------------


def test_monitor_counts_filters_and_repr() -> None:
    client = FakeFleetClient(eight_agents(), total_workflows=5, active_workflows=2)
    monitor = AgentMonitor(client)
    assert repr(monitor) == "AgentMonitor(8 agents: 6 idle, 2 busy)"
    assert pretty(monitor) == repr(monitor)
    assert monitor._repr_mimebundle_()["text/plain"] == repr(monitor)
    descriptions = [b.description for b in monitor.buttons.values()]
    assert descriptions == ["all (8)", "idle (6)", "busy (2)", "error (0)", "offline (0)"]
    assert monitor.buttons["all"].button_style == "info"
    assert len(shown(monitor)) == 8
    assert shown(monitor) == sorted(shown(monitor))
    assert "workflows 2 active / 5" in monitor.metrics_html.value
    assert "agents 0/8 healthy" in monitor.metrics_html.value
    assert "open" in monitor.connection_indicator.value
    assert "@keyframes vimax-pulse" in monitor.stylesheet.value  # once, not in every card
    assert all("@keyframes" not in card.html.value for card in monitor.cards)
    assert "vimax-dot vimax-pulse" in monitor.cards[3].html.value  # frame_painter is busy

    monitor.buttons["busy"].click()
    monitor.flush()
    assert monitor.filter == "busy"
    assert shown(monitor) == ["frame_painter", "screenwriter"]
    assert [c.box for c in monitor.cards] == list(monitor.grid.children)
    assert monitor.buttons["busy"].button_style == "info"
    assert monitor.buttons["all"].button_style == ""

    monitor.set_filter("error")
    monitor.flush()
    assert shown(monitor) == []
    assert "No error agents." in monitor.empty.value
    with pytest.raises(ValueError, match="unknown filter 'broken'"):
        monitor.set_filter("broken")


def test_monitor_search_by_name_or_capability() -> None:
    monitor = AgentMonitor(fleet=Fleet(FakeFleetClient(eight_agents())))
    monitor.set_query("paint")
    monitor.flush()
    assert shown(monitor) == ["frame_painter", "portrait_painter"]
    monitor.set_query("VIDEO")  # a capability, any case
    monitor.flush()
    assert shown(monitor) == ["editor", "video_generator"]
    monitor.set_query("paint portraits")  # every word must match
    monitor.flush()
    assert shown(monitor) == ["portrait_painter"]
    monitor.set_filter("busy")
    monitor.set_query("paint")
    monitor.flush()
    assert shown(monitor) == ["frame_painter"]
    monitor.set_query(EVIL)
    monitor.flush()
    assert shown(monitor) == []
    assert "No busy agents match &#x27;&lt;img src=x onerror=alert(1)&gt;&#x27;." in (
        monitor.empty.value
    )


def test_monitor_escapes_agent_names_and_capabilities() -> None:
    client = FakeFleetClient([agent_record(EVIL, "busy", (EVIL, "<script>x</script>"))])
    monitor = AgentMonitor(client)
    monitor.set_query("<img")
    monitor.flush()
    assert shown(monitor) == [EVIL]
    values = list(html_values(monitor.box))
    assert any("&lt;img src=x onerror=alert(1)&gt;" in v for v in values)
    for value in values:
        if value == "<img" or value.startswith("search"):  # the search box's own text
            continue
        assert "<img" not in value, value
        assert "<script>" not in value, value


def test_monitor_follows_live_changes_and_new_agents() -> None:
    client = FakeFleetClient(eight_agents())
    monitor = AgentMonitor(client)
    watcher = Watcher(monitor)
    status(client, "editor", "error", tasks_failed=1, error_rate=1.0)
    watcher.until(lambda: monitor.buttons["error"].description == "error (1)")
    assert monitor.buttons["idle"].description == "idle (5)"
    editor = next(c for c in monitor.cards if c.name == "editor")
    assert ">error rate</td><td>100.0%</td>" in editor.html.value
    assert repr(monitor) == "AgentMonitor(8 agents: 5 idle, 2 busy, 1 error)"

    client.records = [*client.records, agent_record("narrator", "offline", ("voice",))]
    client.connection.emit(
        "coordinator", type="coordinator_metrics", registered_agents=9, healthy_agents=8
    )
    watcher.until(lambda: "narrator" in shown(monitor))
    assert monitor.buttons["offline"].description == "offline (1)"
    assert "agents 8/9 healthy" in monitor.metrics_html.value

    client.connection.set("offline")
    watcher.until(lambda: "offline" in monitor.connection_indicator.value)


def test_monitor_burst_is_coalesced_and_ends_on_the_exact_final_state() -> None:
    client = FakeFleetClient(eight_agents())
    monitor = AgentMonitor(client)
    watcher = Watcher(monitor)
    names = [a.name for a in monitor.fleet.agents]
    count = 5000

    def drive() -> None:
        for i in range(count):
            name = names[i % len(names)]
            status(client, name, "busy" if i % 3 else "idle", tasks_completed=i)
        for name in names:
            status(client, name, "idle", tasks_completed=count)
        status(client, "editor", "error", tasks_completed=count, tasks_failed=1)

    start = time.monotonic()
    thread = threading.Thread(target=drive)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert time.monotonic() - start < 2.0, "the fleet callback is not cheap"
    assert monitor.wait_drawn(TIMEOUT)
    redraws, bound = coalescing_bound(watcher.times, start, monitor.interval)
    assert 1 <= redraws <= bound, (redraws, bound)
    gaps = [b - a for a, b in zip(watcher.times, watcher.times[1:], strict=False)]
    assert all(gap >= monitor.interval * 0.9 for gap in gaps), gaps

    assert monitor.buttons["idle"].description == "idle (7)"
    assert monitor.buttons["error"].description == "error (1)"
    for card in monitor.cards:
        assert f">done</td><td>{count}</td>" in card.html.value
    assert repr(monitor) == "AgentMonitor(8 agents: 7 idle, 1 error)"


def test_monitor_without_a_client_uses_the_default_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from vimax_nb.client import discovery

    client = FakeFleetClient(eight_agents())
    monkeypatch.setattr(discovery, "default_client", lambda: client)
    monkeypatch.setattr(discovery, "connect", lambda: pytest.fail("connect() was not needed"))
    monitor = AgentMonitor()
    assert monitor.fleet is Fleet.of(client)
    assert repr(monitor) == "AgentMonitor(8 agents: 6 idle, 2 busy)"
    monitor.fleet.close()

    other = FakeFleetClient([agent_record("solo")])
    monkeypatch.setattr(discovery, "default_client", lambda: None)
    monkeypatch.setattr(discovery, "connect", lambda: other)
    assert repr(AgentMonitor()) == "AgentMonitor(1 agent: 1 idle)"


def test_monitor_shows_a_failed_load_and_close_detaches() -> None:
    client = FakeFleetClient(eight_agents())
    client.fail = ConnectionError("<b>server down</b>")
    fleet = Fleet(client)
    monitor = AgentMonitor(fleet=fleet)
    assert "could not load the agents: &lt;b&gt;server down&lt;/b&gt;" in monitor.notice.value
    assert "No agents yet." in monitor.empty.value
    assert repr(monitor) == "AgentMonitor(0 agents)"
    assert len(fleet._callbacks) == 1
    monitor.close()
    assert fleet._callbacks == []
    drawn = monitor.redraws
    client.connection.emit("coordinator", type="coordinator_metrics", queue_size=3)
    assert monitor.wait_drawn(TIMEOUT)
    assert monitor.redraws == drawn
