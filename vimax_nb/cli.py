"""The ``vimax-nb`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .coordinator import Coordinator
from .demo import StoryboardDemo, demo_agents, storyboard_path
from .protocol import COORDINATOR_ROOM, WorkflowState, event_payload
from .store import Store

DEFAULT_IDEA = (
    "A lighthouse keeper finds a whale stranded on the rocks. "
    "She calls the village for help. The tide rises through the night. "
    "At dawn the whale swims free and sings."
)


def _print_event(event: Any) -> None:
    if event.type == "progress" and event.details.get("event") in {"state", "task_completed"}:
        bar = "#" * round(event.progress * 20)
        print(
            f"[{bar:<20}] {event.progress:4.0%}  {event.state.value:<9} {event.message}",
            flush=True,
        )
    elif event.type == "error":
        print(f"error: {event.message}", file=sys.stderr, flush=True)


async def run_demo(idea: str, beats: int | None, workdir: Path) -> int:
    """Run the storyboard demo through a coordinator; every event goes to the event log."""
    store = await Store.open(workdir / "vimax.sqlite3")
    coordinator = Coordinator(store=store, workdir=workdir)
    for agent in demo_agents():
        coordinator.register_agent(agent)
    coordinator.register_pipeline(StoryboardDemo())
    coordinator.add_listener(_print_event)
    coordinator.add_listener(
        lambda event: store.events.append_nowait(
            event.room or COORDINATOR_ROOM, event.type, event_payload(event)
        )
    )
    await coordinator.start()
    try:
        record = await coordinator.submit("storyboard-demo", {"idea": idea, "beats": beats})
        print(f"workflow {record.id}: {record.kind}", flush=True)
        done = await coordinator.wait(record.id)
    finally:
        await coordinator.stop()
        await store.close()
    if done.state != WorkflowState.completed:
        print(f"workflow {done.id} ended {done.state.value}: {done.message}", file=sys.stderr)
        return 1
    path = storyboard_path(workdir, done.id)
    print(f"\n{path.read_text(encoding='utf-8')}")
    print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vimax-nb``."""
    parser = argparse.ArgumentParser(prog="vimax-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a small storyboard workflow through the agents")
    demo.add_argument("idea", nargs="?", default=DEFAULT_IDEA, help="the story idea")
    demo.add_argument(
        "--beats", type=int, default=None, help="panels to draw, 1 to 50 (default: one a sentence)"
    )
    demo.add_argument(
        "--workdir", type=Path, default=Path("vimax-work"), help="where results and the database go"
    )
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run_demo(args.idea, args.beats, args.workdir))
    except (ValueError, OSError) as exc:
        parser.exit(2, f"vimax-nb: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
