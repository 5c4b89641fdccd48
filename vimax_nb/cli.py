"""The ``vimax-nb`` command: run ViMax workflows from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .coordinator import Coordinator
from .pipelines import register_vimax
from .pipelines.request import describe_plan, parse_request
from .protocol import COORDINATOR_ROOM, WorkflowRecord, WorkflowState, event_payload
from .providers import ProviderError, make_providers
from .store import Store

EXIT_FAILED, EXIT_USAGE, EXIT_CANCELED = 1, 2, 130


def say(text: str, *, error: bool = False) -> None:
    """Print a line; a reader that went away (``| head``) silences the rest."""
    stream = sys.stderr if error else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        # Point the stream at /dev/null so the interpreter's final flush is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def _print_event(event: Any) -> None:
    if event.type == "progress" and event.details.get("event") in {"state", "task_completed"}:
        bar = "#" * round(event.progress * 20)
        say(f"[{bar:<20}] {event.progress:4.0%}  {event.message}")
    elif event.type == "error":
        say(f"error: {event.message}", error=True)


async def run_workflow(
    kind: str,
    params: dict[str, Any],
    workdir: Path,
    *,
    chat: str = "procedural",
    image: str = "procedural",
    quiet: bool = False,
) -> WorkflowRecord:
    """Run one workflow in this process until it ends; Ctrl-C cancels it cleanly.

    Every event goes to the durable event log in ``workdir/vimax.sqlite3``, and the
    workflow's files to ``workdir/<workflow id>/``.
    """
    providers = make_providers(chat=chat, image=image)
    store = await Store.open(workdir / "vimax.sqlite3")
    coordinator = Coordinator(store=store, workdir=workdir)
    register_vimax(coordinator, providers)
    coordinator.add_listener(
        lambda event: store.events.append_nowait(
            event.room or COORDINATOR_ROOM, event.type, event_payload(event)
        )
    )
    if not quiet:
        coordinator.add_listener(_print_event)
    await coordinator.start()
    loop = asyncio.get_running_loop()
    try:
        record = await coordinator.submit(kind, params)
        if not quiet:
            say(f"workflow {record.id} ({kind}) in {workdir / record.id}")
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(
                signal.SIGINT, lambda: loop.create_task(coordinator.cancel(record.id))
            )
        return await coordinator.wait(record.id)
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
        await coordinator.stop()
        await store.close()


def _params(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.kind == "request":
        plan = parse_request(args.text)
        say(f"plan: {describe_plan(plan)}")
        return "idea2video", plan.model_dump()
    text = args.text
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    params: dict[str, Any] = {"idea" if args.kind == "idea2video" else "script": text}
    options = {
        "style": args.style,
        "user_requirement": args.requirement,
        "scenes": args.scenes,
        "shots_per_scene": args.shots,
        "fps": args.fps,
        "seconds_per_shot": args.seconds,
        "seed": args.seed,
    }
    params.update({k: v for k, v in options.items() if v is not None})
    if args.size:
        width, _, height = args.size.lower().partition("x")
        params["width"], params["height"] = int(width), int(height)
    return args.kind, params


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vimax-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="make a video from an idea, a script or a request in plain words",
        description="Make a video. KIND is idea2video (TEXT is an idea), script2video "
        "(TEXT is a script, or @FILE) or request (TEXT says what you want in plain words).",
    )
    run.add_argument("kind", choices=["idea2video", "script2video", "request"])
    run.add_argument("text", help="the idea, the script (or @FILE), or the request")
    run.add_argument("--style", help="visual style, e.g. watercolor (default: cinematic)")
    run.add_argument("--requirement", help="wishes and limits, e.g. 'for children'")
    run.add_argument("--scenes", type=int, help="most scenes to make (default 1)")
    run.add_argument("--shots", type=int, help="shots per scene (default 4)")
    run.add_argument("--size", help="WIDTHxHEIGHT (default 640x360)")
    run.add_argument("--fps", type=int, help="frames per second (default 12)")
    run.add_argument("--seconds", type=float, help="seconds per shot (default 2)")
    run.add_argument("--seed", type=int, help="same seed, same story (default 0)")
    run.add_argument("--out", type=Path, default=Path("vimax-work"), help="where results go")
    run.add_argument("--chat", default="procedural", help="chat provider: procedural or openai")
    run.add_argument("--image", default="procedural", help="image provider: procedural or openai")
    run.add_argument("--quiet", action="store_true", help="print only the video's path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vimax-nb``; returns the exit code (0 completed, 1 failed,
    2 bad usage, 130 canceled)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        kind, params = _params(args)
        done = asyncio.run(
            run_workflow(kind, params, args.out, chat=args.chat, image=args.image, quiet=args.quiet)
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        parser.exit(EXIT_USAGE, f"vimax-nb: error: {problems}\n")
    except (ValueError, OSError, ProviderError) as exc:
        parser.exit(EXIT_USAGE, f"vimax-nb: error: {exc}\n")
    if done.state == WorkflowState.canceled:
        say(f"workflow {done.id} canceled", error=True)
        return EXIT_CANCELED
    if done.state != WorkflowState.completed or done.result is None:
        say(f"workflow {done.id} ended {done.state.value}: {done.message}", error=True)
        return EXIT_FAILED
    video = args.out / done.id / done.result["video"]
    if args.quiet:
        say(str(video))
    else:
        r = done.result
        say(f"\n{r['story']['title'] if r.get('story') else 'Your video'}")
        say(
            f"{video}: {r['width']}x{r['height']}, {r['frame_count']} frames, {r['duration']:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
