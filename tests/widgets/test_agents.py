"""AgentStatusCard and AgentMonitor showing a real Fleet of the fake server's agents."""

from __future__ import annotations

import gc
import itertools
import time
import weakref

import pytest
from IPython.lib.pretty import pretty

from vimax_nb.client import Client
from vimax_nb.client.fleet import Fleet
from vimax_nb.protocol import AgentState, ProviderStatus, agent_room
from vimax_nb.widgets import AgentMonitor, AgentStatusCard, theme
from vimax_nb.widgets.agents import card_html

from .fakes import (
    EVIL,
    TIMEOUT,
    Backend,
    Watcher,
    agent,
    change_times,
    eight_agents,
    html_values,
)


def shown(monitor: AgentMonitor) -> list[str]:
    return [card.name for card in monitor.cards]


# -- the card ---------------------------------------------------------------------------


def test_a_card_shows_every_metric() -> None:
    record = agent(
        "screenwriter",
        "busy",
        "script",
        "story",
        tasks_completed=12,
        tasks_failed=3,
        error_rate=0.2,
        avg_execution_ms=1500.0,
        current_task="wf-7/script",
        last_heartbeat="2030-01-01T12:00:00+00:00",
    )
    card = AgentStatusCard(record)
    html = card.html.value
    assert "<b>screenwriter</b>" in html
    assert "vimax-dot vimax-pulse" in html  # busy: the dot pulses
    assert f"background:{theme.AGENT_COLORS[AgentState.busy]}" in html
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
    assert "title='the screenwriter'" in html
    assert repr(card) == "AgentStatusCard(screenwriter busy)"
    assert pretty(card) == "AgentStatusCard(screenwriter busy)"
    assert card._repr_mimebundle_()["text/plain"] == "AgentStatusCard(screenwriter busy)"

    card.update(agent("screenwriter"), now=True)
    html = card.html.value
    assert "class='vimax-dot'" in html  # idle: no pulse
    assert f"background:{theme.AGENT_COLORS[AgentState.idle]}" in html
    assert "no capabilities" in html
    assert ">avg time</td><td>\N{EM DASH}</td>" in html
    assert ">heartbeat</td><td title=''>never</td>" in html


def test_a_card_escapes_agent_text() -> None:
    record = agent(EVIL, "error", EVIL, current_task=EVIL, last_heartbeat=EVIL)
    html = card_html(record.model_copy(update={"description": EVIL}))
    assert "<img" not in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") == 6


def test_a_live_card_follows_its_agent_in_the_fleet(backend: Backend) -> None:
    backend.agents(*eight_agents())
    fleet = Fleet(backend.client)
    card = AgentStatusCard("editor", fleet=fleet)
    watcher = Watcher(card)
    assert repr(card) == "AgentStatusCard(editor idle)"
    backend.status("editor", "busy", tasks_completed=2, current_task="wf-1/edit")
    watcher.until(lambda: "vimax-dot vimax-pulse" in card.html.value)
    assert ">done</td><td>2</td>" in card.html.value
    assert ">task</td><td>wf-1/edit</td>" in card.html.value
    assert repr(card) == "AgentStatusCard(editor busy)"
    nobody = AgentStatusCard("nobody", client=backend.client)
    assert repr(nobody) == "AgentStatusCard(nobody unknown)"
    assert f"<small style='color:{theme.UNKNOWN_AGENT_COLOR}'>unknown</small>" in nobody.html.value
    fleet.close()


NO_KEY = f"no google API key: set GEMINI_API_KEY {EVIL}"


def video_providers(ready: bool) -> list[ProviderStatus]:
    """The providers of the video generator: procedural, and google (the default)."""
    return [
        ProviderStatus(role="chat", provider="procedural", model="procedural", ready=True),
        ProviderStatus(
            role="video",
            provider="google",
            model="veo-3.0-generate-001",
            ready=ready,
            problem=None if ready else NO_KEY,
            default=True,
        ),
    ]


def test_a_card_shows_what_the_agent_waits_on_and_its_providers_readiness() -> None:
    record = agent(
        "video_generator", "busy", "generate_clip", activity=f"waiting on veo-3 {EVIL} (42 s)"
    ).model_copy(update={"providers": video_providers(ready=False)})
    html = card_html(record)
    assert "waiting on veo-3 &lt;img src=x onerror=alert(1)&gt; (42 s)" in html
    assert "<img" not in html  # the problem and the activity, escaped
    ready, not_ready = html.split("class='vimax-provider")[1:]
    assert "chat: procedural procedural" in ready
    assert "&#10003;" in ready
    assert "video: google veo-3.0-generate-001" in not_ready
    assert "vimax-not-ready" in not_ready  # flagged, in red, with its problem
    assert theme.RED in not_ready
    assert "not ready:</b> no google API key: set GEMINI_API_KEY &lt;img" in not_ready

    idle = card_html(agent("video_generator").model_copy(update={"providers": []}))
    assert "vimax-activity" not in idle
    assert "vimax-provider" not in idle


def test_the_monitor_shows_an_agents_activity_and_providers_live(backend: Backend) -> None:
    video = agent("video_generator", "idle", "generate_clip").model_copy(
        update={"providers": video_providers(ready=False)}
    )
    backend.agents(video)
    monitor = AgentMonitor(backend.client)
    watcher = Watcher(monitor)
    watcher.until(lambda: len(monitor.cards) == 1)
    card = monitor.cards[0]
    assert "vimax-not-ready" in card.html.value
    backend.status("video_generator", "busy", activity="waiting on veo-3.0-generate-001 (3 s)")
    watcher.until(lambda: "waiting on veo-3.0-generate-001 (3 s)" in card.html.value)
    assert "vimax-not-ready" in card.html.value  # an event without providers: unchanged
    backend.server.publish(
        agent_room("video_generator"),
        type="agent_status",
        agent_name="video_generator",
        status="idle",
        providers=[p.model_dump() for p in video_providers(ready=True)],
    )
    watcher.until(lambda: "vimax-not-ready" not in card.html.value)
    assert "waiting on" not in card.html.value
    assert "video: google veo-3.0-generate-001" in card.html.value
    assert repr(monitor) == "AgentMonitor(1 agent: 1 idle)"
    monitor.close()


# -- the monitor ------------------------------------------------------------------------


def test_the_monitor_counts_filters_and_repr(backend: Backend) -> None:
    backend.agents(*eight_agents(), total_workflows=5, active_workflows=2)
    monitor = AgentMonitor(backend.client)
    assert repr(monitor) == "AgentMonitor(8 agents: 6 idle, 2 busy)"
    assert pretty(monitor) == repr(monitor)
    assert monitor._repr_mimebundle_()["text/plain"] == repr(monitor)
    assert monitor.fleet.counts() == {"all": 8, "idle": 6, "busy": 2, "error": 0, "offline": 0}
    descriptions = [b.description for b in monitor.buttons.values()]
    assert descriptions == ["all (8)", "idle (6)", "busy (2)", "error (0)", "offline (0)"]
    assert monitor.buttons["all"].button_style == "info"
    assert len(shown(monitor)) == 8
    assert shown(monitor) == sorted(shown(monitor))
    assert "workflows 2 active / 5" in monitor.metrics_html.value
    assert "agents 0/8 healthy" in monitor.metrics_html.value
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
    monitor.close()


def test_the_monitor_searches_by_name_or_capability(backend: Backend) -> None:
    backend.agents(*eight_agents())
    monitor = AgentMonitor(fleet=Fleet(backend.client))
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
    monitor.fleet.close()


def test_the_monitor_escapes_agent_names_and_capabilities(backend: Backend) -> None:
    backend.agents(agent(EVIL, "busy", EVIL, "<script>x</script>"))
    monitor = AgentMonitor(backend.client)
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
    monitor.close()


def test_the_monitor_follows_live_changes_and_new_agents(backend: Backend) -> None:
    backend.agents(*eight_agents())
    monitor = AgentMonitor(backend.client)
    watcher = Watcher(monitor)
    watcher.until(lambda: "&#9679; open" in monitor.connection_indicator.value)
    backend.status("editor", "error", tasks_failed=1, error_rate=1.0)
    watcher.until(lambda: monitor.buttons["error"].description == "error (1)")
    assert monitor.buttons["idle"].description == "idle (5)"
    editor = next(c for c in monitor.cards if c.name == "editor")
    assert ">error rate</td><td>100.0%</td>" in editor.html.value
    assert repr(monitor) == "AgentMonitor(8 agents: 5 idle, 2 busy, 1 error)"

    backend.server.agents["narrator"] = agent("narrator", "offline", "voice")
    backend.coordinator(registered_agents=9, healthy_agents=8)  # the fleet reloads the list
    watcher.until(lambda: "narrator" in shown(monitor))
    assert monitor.buttons["offline"].description == "offline (1)"
    watcher.until(lambda: "agents 8/9 healthy" in monitor.metrics_html.value)

    backend.server.stop_listening()
    watcher.until(lambda: "&#9679; offline" in monitor.connection_indicator.value)
    monitor.close()


def test_a_burst_is_coalesced_and_the_monitor_ends_on_the_exact_final_state(
    backend: Backend,
) -> None:
    backend.agents(*eight_agents())
    monitor = AgentMonitor(backend.client)
    watcher = Watcher(monitor)
    watcher.until(lambda: "&#9679; open" in monitor.connection_indicator.value)
    names = [a.name for a in monitor.fleet.agents]
    times = change_times(monitor.cards[0].html)  # set at most once a redraw
    first_draws = monitor.redraws
    count = 2000
    start = time.monotonic()
    for i in range(count):
        name = names[i % len(names)]
        backend.status(name, "busy" if i % 3 else "idle", tasks_completed=i)
    for name in names:
        backend.status(name, "idle", tasks_completed=count)
    backend.status("editor", "error", tasks_completed=count, tasks_failed=1)

    def final(fleet: Fleet) -> bool:
        agents = fleet.agents
        return fleet.counts()["error"] == 1 and all(
            a.metrics.tasks_completed == count for a in agents
        )

    assert monitor.fleet.wait_for(final, TIMEOUT)
    assert monitor.wait_drawn(TIMEOUT)
    redraws = monitor.redraws - first_draws
    bound = (time.monotonic() - start) / monitor.interval + 2
    assert 1 <= redraws <= bound, (redraws, bound)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times
    assert all(gap >= monitor.interval * 0.9 for gap in gaps), gaps

    assert monitor.buttons["idle"].description == "idle (7)"
    assert monitor.buttons["error"].description == "error (1)"
    for card in monitor.cards:
        assert f">done</td><td>{count}</td>" in card.html.value
    assert repr(monitor) == "AgentMonitor(8 agents: 7 idle, 1 error)"
    monitor.close()


def test_the_monitor_without_a_client_uses_the_default_one(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vimax_nb.client import discovery

    backend.agents(*eight_agents())
    monkeypatch.setattr(discovery, "default_client", lambda: backend.client)
    monkeypatch.setattr(discovery, "connect", lambda: pytest.fail("connect() was not needed"))
    monitor = AgentMonitor()
    assert monitor.fleet is Fleet.of(backend.client)
    assert repr(monitor) == "AgentMonitor(8 agents: 6 idle, 2 busy)"
    monitor.close()
    monitor.fleet.close()

    other = Client(backend.server.url)
    backend.agents(agent("solo"))
    monkeypatch.setattr(discovery, "default_client", lambda: None)
    monkeypatch.setattr(discovery, "connect", lambda: other)
    try:
        solo = AgentMonitor()
        assert solo.fleet.client is other
        assert repr(solo) == "AgentMonitor(1 agent: 1 idle)"
        solo.close()
        solo.fleet.close()
    finally:
        other.close()


def test_the_monitor_shows_a_failed_load_and_close_detaches(backend: Backend) -> None:
    backend.agents(*eight_agents())
    backend.server.stop_listening()
    fleet = Fleet(backend.client, live=False)
    monitor = AgentMonitor(fleet=fleet)
    assert "could not load the agents: &lt;urlopen error" in monitor.notice.value
    assert "<urlopen" not in monitor.notice.value
    assert "No agents yet." in monitor.empty.value
    assert repr(monitor) == "AgentMonitor(0 agents)"

    backend.server.start()
    fleet.refresh()  # loaded now: the monitor shows it
    assert monitor.wait_drawn(TIMEOUT)
    assert repr(monitor) == "AgentMonitor(8 agents: 6 idle, 2 busy)"
    assert len(shown(monitor)) == 8
    assert monitor.notice.value == ""

    ref = weakref.ref(monitor)
    monitor.close()
    del monitor
    gc.collect()
    assert ref() is None  # the fleet's callback is gone: nothing keeps the panel
    backend.agents(agent("solo"))
    fleet.refresh()
    assert len(fleet.agents) == 1
