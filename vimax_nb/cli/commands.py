"""``vimax-nb run``, ``watch``, ``ls`` and ``agents``: clients of a vimax-nb server."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.live import Live

from ..client import Client, Run, VimaxError, discovery
from ..pipelines.params import Idea2VideoParams, Script2VideoParams
from ..pipelines.request import describe_plan, parse_request
from ..protocol import WorkflowRecord
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Interrupts,
    connect,
    fail,
    say,
    server_error,
    shown_path,
)
from .display import LiveView, PlainView, agents_table, timestamp, title_of, workflows_table

CANCEL_WAIT = 15.0  # seconds to wait for the canceled state after Ctrl-C
REFRESH = 10  # live display refreshes per second


# -- run --------------------------------------------------------------------------------


def params_of(args: Any) -> tuple[str, dict[str, Any]]:
    """The workflow kind and its parameters, checked here so bad input starts nothing."""
    if args.kind == "request":
        plan = parse_request(args.text)
        if not args.quiet:
            say(f"plan: {describe_plan(plan)}")
        return "idea2video", plan.model_dump()
    text = args.text
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read the script: {exc}", EXIT_USAGE) from None
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
        try:
            params["width"], params["height"] = int(width), int(height)
        except ValueError:
            raise CliError(
                f"--size {args.size!r}: give WIDTHxHEIGHT, e.g. 640x360", EXIT_USAGE
            ) from None
    model = Idea2VideoParams if args.kind == "idea2video" else Script2VideoParams
    try:
        model.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise CliError(f"invalid parameters: {problems}", EXIT_USAGE) from None
    return args.kind, params


def cmd_run(args: Any, interrupts: Interrupts) -> int:
    kind, params = params_of(args)
    client = connect(args)
    if args.server_args and discovery.private_server() is None:
        fail(
            f"note: --chat/--image are ignored: the server at {client.url} uses its own "
            "providers (c.VimaxApp.chat_provider, image_provider)"
        )
    interrupts.catch()  # from here Ctrl-C cancels the run
    try:
        run = client.submit(kind, **params)
    except VimaxError as exc:
        raise server_error(exc) from None
    return follow(client, run, args, interrupts, cancel_on_interrupt=True)


def cmd_watch(args: Any, interrupts: Interrupts) -> int:
    client = connect(args)
    interrupts.catch()  # Ctrl-C stops watching; the workflow goes on
    try:
        run = client.run(args.id)
    except VimaxError as exc:
        raise server_error(exc) from None
    return follow(client, run, args, interrupts, cancel_on_interrupt=False)


def follow(
    client: Client, run: Run, args: Any, interrupts: Interrupts, *, cancel_on_interrupt: bool
) -> int:
    """Show ``run`` until it ends (or Ctrl-C); the exit code of its outcome."""
    quiet = bool(args.quiet)
    console = Console(highlight=False)
    wake = interrupts.wake
    run.on_change(lambda _run: wake.set())
    source = discovery.default_source() or client.url
    if not quiet:
        say(f"workflow {run.id} ({run.kind}) on {client.url}")
        say(f"server: {source}")
        say("Ctrl-C cancels the run" if cancel_on_interrupt else "Ctrl-C stops watching")
    live: Live | None = None
    plain: PlainView | None = None
    if not quiet and console.is_terminal:
        live = Live(LiveView(run, source), console=console, refresh_per_second=REFRESH)
        interrupts.on_hard_exit.append(lambda: _show_cursor(console))
        live.start()
    elif not quiet:
        plain = PlainView(run, console)
    try:
        while not run.done and not interrupts.flag.is_set():
            if plain is not None:
                plain.update()
            _check_server()
            wake.wait(0.5)
            wake.clear()
        if plain is not None:
            plain.update()
        canceling = interrupts.flag.is_set() and not run.done and cancel_on_interrupt
        if canceling:  # the live panel keeps drawing until the cancel lands
            return _cancel(client, run, args, plain, wake)
    finally:
        if live is not None:
            live.stop()
    if interrupts.flag.is_set() and not run.done:
        fail(f"stopped watching workflow {run.id} ({run.state}); it goes on")
        return EXIT_INTERRUPTED
    return finish(client, run, args)


def _show_cursor(console: Console) -> None:
    console.show_cursor(True)


def _check_server() -> None:
    server = discovery.private_server()
    if server is not None and server.process is not None and not server.running:
        raise CliError(
            f"the private server stopped (exit code {server.process.returncode}); "
            f"log: {server.log_tail()}"
        )


def _cancel(
    client: Client, run: Run, args: Any, plain: PlainView | None, wake: threading.Event
) -> int:
    fail(f"canceling workflow {run.id}... (Ctrl-C again to leave at once)")
    try:
        run.cancel()
    except VimaxError as exc:  # it ended meanwhile (409), or the server refused
        if not run.done:
            fail(f"the server did not cancel workflow {run.id}: {exc.message}")
    except (TimeoutError, ConnectionError, OSError) as exc:
        fail(f"could not send the cancel for workflow {run.id}: {exc}")
    deadline = time.monotonic() + CANCEL_WAIT
    while not run.done and time.monotonic() < deadline:
        wake.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        wake.clear()
    if plain is not None:
        plain.update()
    try:
        state = client.workflow(run.id).state.value
    except (VimaxError, OSError, ValueError):
        state = run.state
    if state == "canceled":
        fail(f"workflow {run.id} canceled (Ctrl-C)")
    elif state in ("completed", "failed"):
        fail(f"workflow {run.id} {state} before the cancel reached it")
        return finish(client, run, args)
    else:
        fail(f"workflow {run.id} is still {state} after {CANCEL_WAIT:.0f} s; cancel was asked")
    return EXIT_INTERRUPTED


def finish(client: Client, run: Run, args: Any) -> int:
    """Print the outcome; the exit code."""
    try:
        record = client.workflow(run.id)
    except VimaxError as exc:
        raise server_error(exc) from None
    state = record.state.value
    if state == "canceled":
        fail(f"workflow {record.id} was canceled{_reason(record)}")
        return EXIT_INTERRUPTED
    if state != "completed" or not record.result:
        error = record.error or {}
        message = error.get("message") or record.message or state
        fail(f"workflow {record.id} {state}: {message}")
        return EXIT_FAILED
    video = deliver(client, record, args.out)
    result = record.result
    if args.quiet:
        say(str(video))
        return EXIT_OK
    story = result.get("story")
    title = story.get("title") if isinstance(story, dict) else None
    started = _seconds(record.started_at, record.finished_at)
    took = f" in {started:.1f} s" if started is not None else ""
    say(f"workflow {record.id} completed{took}: {title_of(run)}")
    if title:
        say(f"story: {title}")
    info = ""
    if all(k in result for k in ("width", "height", "frame_count", "duration")):
        info = (
            f": {result['width']}x{result['height']}, {result['frame_count']} frames, "
            f"{float(result['duration']):.1f} s"
        )
    say(f"{video}{info}")
    return EXIT_OK


def _reason(record: WorkflowRecord) -> str:
    return f": {record.message}" if record.message else ""


def _seconds(start: str | None, end: str | None) -> float | None:
    a, b = timestamp(start), timestamp(end)
    return b - a if a is not None and b is not None else None


def deliver(client: Client, record: WorkflowRecord, out: Path | None) -> Path | str:
    """Where the final video is for the user: the server's own file when it is on this
    machine and no ``--out`` is given; else a copy in ``<out>/<id>/`` (``out`` defaults
    to ``vimax-work`` for a remote server)."""
    relative = str((record.result or {}).get("video") or "final_video.mp4")
    where = client.artifact(record.id, relative)
    if out is None:
        if isinstance(where, Path):
            return shown_path(where)
        out = Path("vimax-work")
    target = out / record.id / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if isinstance(where, Path):
            if not (target.exists() and os.path.samefile(where, target)):
                shutil.copyfile(where, target)
        else:
            client.download(record.id, relative, target)
    except VimaxError as exc:
        raise server_error(exc) from None
    except OSError as exc:
        raise CliError(f"cannot save the video to {target}: {exc}") from None
    return target


# -- ls, agents -------------------------------------------------------------------------


def cmd_ls(args: Any, interrupts: Interrupts) -> int:
    client = connect(args)
    try:
        records = client.workflows()
    except VimaxError as exc:
        raise server_error(exc) from None
    records.sort(key=lambda r: r.created_at, reverse=True)
    if args.limit:
        records = records[: args.limit]
    if args.json:
        say(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
    elif not records:
        say("no workflows yet")
    else:
        table_console().print(workflows_table(records))
    return EXIT_OK


def cmd_agents(args: Any, interrupts: Interrupts) -> int:
    client = connect(args)
    try:
        agents = client.agents()
    except VimaxError as exc:
        raise server_error(exc) from None
    if args.json:
        say(json.dumps(agents, indent=2))
    else:
        table_console().print(agents_table(agents))
    return EXIT_OK


def table_console() -> Console:
    """A console for tables: the terminal's width, or wide enough not to fold in a pipe."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=200)
