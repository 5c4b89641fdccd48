"""The ``vimax-nb`` command: make and watch ViMax videos from a terminal.

Every command is a client of a vimax-nb server (the Jupyter server extension), found as
:func:`vimax_nb.client.connect` finds one: ``--url``, else ``VIMAX_NB_URL``/
``VIMAX_NB_TOKEN`` (a named server that cannot be reached is an error, never a reason to
use another), the Jupyter server of the kernel it runs in, a server already serving this
folder (``vimax-nb serve``), else a private server started for the command and stopped
after it. The read-only commands (``ls``, ``agents``, ``watch``) never start one: with no
server running they say so and how to start one; ``gc`` starts one only for a folder
whose ``vimax-work/`` has a database (the workflows it removes are there: the server owns
that file, so the command goes through it rather than around it). ``--verbose`` says
which server was used.

Exit codes: 0 completed (or done), 1 the workflow failed, was left interrupted by a
server that stopped or restarted, or the server went away (or sent a reply this client
cannot read), 2 bad usage or input (nothing was started), 3 no server could be reached
or started, 130 Ctrl-C or canceled. ``serve`` exits 0 when Ctrl-C stops it: that is how a
foreground server is meant to end (as ``jupyter server`` does).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .._version import __version__
from ..client import discovery
from ..pipelines.params import OFFLINE_STYLES, Idea2VideoParams
from ..protocol import MAX_PRIORITY, MIN_PRIORITY
from .common import EXIT_FAILED, EXIT_INTERRUPTED, OFFLINE_LIMIT, CliError, Interrupts
from .common import fail as _fail

__all__ = ["main"]

Command = Callable[[Any, Interrupts], int]


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--url", help="the server's URL (default: found, or started)")
    group.add_argument("--token", help="the server's token (with --url)")
    group.add_argument(
        "--verbose",
        action="store_true",
        help="say which server is used, and how it was found, first (on stderr)",
    )


def _limit(field: str, bound: str) -> Any:
    """A bound (``ge``, ``le``, ``max_length``) of a workflow parameter, as the server's
    validation has it: the help says the ranges the server enforces."""
    for rule in Idea2VideoParams.model_fields[field].metadata:
        value = getattr(rule, bound, None)
        if value is not None:
            return value
    raise LookupError(f"{field} has no {bound}")


def _span(field: str) -> str:
    return f"{_limit(field, 'ge')}-{_limit(field, 'le')}"


def _priority(text: str) -> int:
    """``--priority N``: a whole number from MIN_PRIORITY to MAX_PRIORITY, else an
    argparse error (exit 2) saying so."""
    try:
        priority = int(text)
    except ValueError:
        priority = None
    if priority is None or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise argparse.ArgumentTypeError(
            f"give a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, higher runs first "
            f"(got {text!r})"
        )
    return priority


_AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def _age(text: str) -> float:
    """``--older-than AGE``: ``7d``, ``12h``, ``30m``, ``90s``, ``2w`` or a bare number
    of days, as seconds; else an argparse error (exit 2) saying what it takes."""
    number, unit = text.strip().lower(), "d"
    if number[-1:] in _AGE_UNITS:
        number, unit = number[:-1], number[-1]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"give an age such as 7d, 12h, 30m, 90s or 2w (a bare number is days; 0 means "
            f"every finished workflow) (got {text!r})"
        )
    return value * _AGE_UNITS[unit]


def _count(text: str) -> int:
    """A whole number, 0 or more; else an argparse error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"give a whole number, 0 or more (got {text!r})")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vimax-nb",
        description="Make and watch ViMax videos from a terminal.",
        epilog="Exit codes: 0 done, 1 failed or interrupted (or the server went away), 2 bad "
        "usage, 3 no server, 130 Ctrl-C/canceled; `serve` exits 0 when Ctrl-C stops it.",
    )
    parser.add_argument("--version", action="version", version=f"vimax-nb {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    text_max = _limit("idea", "max_length")
    run = commands.add_parser(
        "run",
        help="make a video from an idea, a script or a request in plain words",
        description="Make a video with a live progress display. KIND is idea2video (TEXT is "
        "an idea), script2video (TEXT is a script) or request (TEXT says what you want in "
        f"plain words); an idea or a script is at most {text_max:,} characters. An idea or "
        "a script beginning with @ names a UTF-8 text file to read it from (@scene.txt); "
        "for one that itself begins with @, put -- before it: "
        "vimax-nb run idea2video -- '@home a cat naps'. Ctrl-C cancels the run.",
    )
    run.add_argument(
        "kind",
        metavar="KIND",
        choices=["idea2video", "script2video", "request"],
        help="idea2video, script2video or request",
    )
    run.add_argument(
        "text",
        metavar="TEXT",
        help="the idea or the script (@FILE: read from FILE; after --, the text as it is), "
        "or the request",
    )
    run.add_argument(
        "--style",
        help="visual style in free words, passed to the models (default: cinematic); the "
        "offline renderer has looks for " + ", ".join(OFFLINE_STYLES) + " and gives any "
        "other style colours of its own",
    )
    run.add_argument("--requirement", help="wishes and limits, e.g. 'for children'")
    run.add_argument(
        "--scenes",
        type=int,
        metavar="N",
        help=f"most scenes to make, {_span('scenes')} (default 1; script2video: one per "
        "scene heading)",
    )
    run.add_argument(
        "--shots",
        type=int,
        metavar="N",
        help=f"shots per scene, {_span('shots_per_scene')} (default 4)",
    )
    run.add_argument(
        "--size",
        metavar="WxH",
        help=f"WIDTHxHEIGHT in even numbers, up to {_limit('width', 'le')}x"
        f"{_limit('height', 'le')}, at least {_limit('width', 'ge')}x{_limit('height', 'ge')} "
        "(default 640x360)",
    )
    run.add_argument(
        "--fps", type=int, metavar="N", help=f"frames per second, {_span('fps')} (default 12)"
    )
    run.add_argument(
        "--seconds",
        type=float,
        metavar="S",
        help=f"seconds per shot, more than 0 and up to {_limit('seconds_per_shot', 'le'):g} "
        "(default 2)",
    )
    run.add_argument(
        "--seed", type=int, metavar="N", help="same seed, same story: 0 or more (default 0)"
    )
    run.add_argument(
        "--priority",
        type=_priority,
        default=0,
        metavar="N",
        help=f"{MIN_PRIORITY} to {MAX_PRIORITY}: when the server is busy, tasks of "
        "higher-priority runs start first (default 0)",
    )
    group = run.add_argument_group(
        "providers and cost", "`vimax-nb providers` lists the server's providers"
    )
    for role in ("chat", "image", "video"):
        group.add_argument(
            f"--{role}", metavar="NAME", help=f"the {role} provider (default: the server's)"
        )
    group.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="the most the run may spend on provider calls, in US dollars (default: no limit)",
    )
    _providers_file_option(group)
    _output_options(run)
    _connection_options(run)

    watch = commands.add_parser(
        "watch",
        help="follow a workflow until it ends",
        description="Show a running (or finished) workflow live; exit with its outcome. "
        "Ctrl-C stops watching (the workflow goes on).",
    )
    watch.add_argument("id", help="the workflow id (see `vimax-nb ls`)")
    _output_options(watch)
    _connection_options(watch)

    resume = commands.add_parser(
        "resume",
        help="resume a paused or interrupted workflow and follow it",
        description="Resume a paused workflow, or one a server stop or restart left "
        "interrupted, then show it live as `watch` does. Ctrl-C stops watching.",
    )
    resume.add_argument("id", help="the workflow id (see `vimax-nb ls`)")
    _output_options(resume)
    _connection_options(resume)

    ls = commands.add_parser(
        "ls",
        help="list workflows",
        description="Workflows, newest first: all of them, or the newest N (-n) and how "
        "many more there are.",
    )
    ls.add_argument("--json", action="store_true", help="print the records as JSON")
    ls.add_argument(
        "-n",
        "--limit",
        type=_count,
        default=0,
        metavar="N",
        help="show the newest N workflows, and say how many more there are (default 0: all)",
    )
    _connection_options(ls)

    ls.add_argument(
        "--cost", action="store_true", help="add what each workflow spent, and the total"
    )

    gc = commands.add_parser(
        "gc",
        help="remove old finished workflows and their files",
        description="Remove the workflows that ended (completed, failed or canceled) more "
        "than --older-than ago, with their files, checkpoints and records; queued, "
        "running, paused and interrupted workflows are kept. Goes through the server the "
        "other commands find (--url, VIMAX_NB_URL, this kernel's, this folder's); with "
        "none running, a private one is started when this folder's vimax-work/ holds "
        "workflows. A server with c.VimaxApp.owner_only removes only your own.",
    )
    gc.add_argument(
        "--older-than",
        type=_age,
        metavar="AGE",
        help="how long ago a workflow ended for it to go: 7d, 12h, 30m, 90s, 2w (a bare "
        "number is days; 0: every finished one). Default: the server's "
        "c.VimaxApp.retention_days (7 days unless configured)",
    )
    gc.add_argument(
        "--dry-run",
        action="store_true",
        help="remove nothing: list what would go and the space it would free",
    )
    gc.add_argument("--json", action="store_true", help="print the outcome as JSON")
    _connection_options(gc)

    agents = commands.add_parser("agents", help="list agents and their metrics")
    agents.add_argument("--json", action="store_true", help="print the records as JSON")
    _connection_options(agents)

    providers = commands.add_parser(
        "providers",
        help="list the server's providers per role, and whether each is ready",
        description="The providers the server has configured for each role (chat, image, "
        "video): the model each uses, the role's default, and whether it is ready (if not, "
        "what to fix). `run --chat/--image/--video NAME` chooses among them.",
    )
    providers.add_argument("--json", action="store_true", help="print them as JSON")
    _providers_file_option(providers)
    _connection_options(providers)

    serve = commands.add_parser(
        "serve",
        help="run a Jupyter server with the extension for this folder",
        description="Run a Jupyter server with vimax-nb in the foreground, serving this folder "
        "(files in vimax-work/); print its URL and token. Other vimax-nb commands in this "
        "folder use it. Ctrl-C stops it (exit 0; running workflows become interrupted: "
        "`vimax-nb resume ID` carries on with one). Options after -- go to jupyter server.",
    )
    serve.add_argument("--dir", help="the folder to serve (default: this one)")
    serve.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port", type=int, default=8888, help="port (default 8888, else a free one; 0: any)"
    )
    serve.add_argument("--token", help="the token to require (default: a random one)")
    serve.add_argument("--log-level", default="WARN", help="the server's log level")
    serve.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it")
    group = serve.add_argument_group("providers")
    for role in ("chat", "image", "video"):
        group.add_argument(
            f"--{role}", metavar="NAME", help=f"the default {role} provider of the server"
        )
    _providers_file_option(group)
    group = serve.add_argument_group("executor")
    group.add_argument(
        "--executor",
        choices=("local", "dask"),
        help="where tasks run: local threads (default) or a Dask cluster "
        '(pip install "vimax-nb[dask]")',
    )
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --executor dask: the Dask scheduler (tcp://host:8786); default: a "
        "LocalCluster of worker processes started with the server",
    )
    serve.add_argument("server_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        help="save the video as OUT/<id>/final_video.mp4 (default: the server's own file "
        "when it is on this machine, else vimax-work/<id>/)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the video's path")
    parser.add_argument(
        "--offline-timeout",
        type=float,
        default=OFFLINE_LIMIT,
        metavar="SECONDS",
        help=f"give up (exit 1) when the connection to the server has been down this long "
        f"(default {OFFLINE_LIMIT:g}; not for a private server this command started)",
    )


def _providers_file_option(parser: Any) -> None:
    parser.add_argument(
        "--providers",
        dest="providers_file",
        metavar="FILE",
        help="a providers file (YAML or TOML) for the server this command starts; a server "
        "already running keeps its own",
    )


def _commands() -> dict[str, Command]:
    from .commands import (
        cmd_agents,
        cmd_gc,
        cmd_ls,
        cmd_providers,
        cmd_resume,
        cmd_run,
        cmd_watch,
    )
    from .serve import cmd_serve

    return {
        "run": cmd_run,
        "watch": cmd_watch,
        "resume": cmd_resume,
        "ls": cmd_ls,
        "gc": cmd_gc,
        "agents": cmd_agents,
        "providers": cmd_providers,
        "serve": cmd_serve,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vimax-nb``; returns the exit code (see the module's docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "run":
        # After --, TEXT is the text itself, even when it begins with @.
        args.literal = "--" in argv and args.text in argv[argv.index("--") + 1 :]
    interrupts = Interrupts()
    interrupts.install()
    try:
        if args.command in ("run", "providers"):
            from .common import private_server_args

            args.server_args = private_server_args(args)
        return _commands()[args.command](args, interrupts)
    except CliError as exc:
        _fail(f"error: {exc}")
        return exc.code
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except ValidationError as exc:  # bad input is checked (exit 2) before it gets here
        _fail(
            f"error: the server sent a reply this vimax-nb cannot read (is it the same "
            f"version?): {exc.error_count()} problem(s), first: {_first_problem(exc)}"
        )
        return EXIT_FAILED
    except ValueError as exc:  # a malformed reply, ...: usage errors are CliErrors
        _fail(f"error: {exc}")
        return EXIT_FAILED
    except (ConnectionError, TimeoutError, OSError) as exc:
        # Not reaching a server at the start is a CliError (exit 3) from connect().
        _fail(f"error: lost the connection to the server: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    finally:
        interrupts.restore()
        discovery.disconnect()


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0] if exc.error_count() else {"loc": (), "msg": str(exc)}
    where = ".".join(map(str, error["loc"]))
    return f"{where}: {error['msg']}" if where else str(error["msg"])


if __name__ == "__main__":
    sys.exit(main())
