"""``vimax-nb run``, ``watch``, ``resume``, ``ls``, ``gc``, ``agents`` and ``providers``:
clients of a vimax-nb server."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from ..client import Client, Run, VimaxError, discovery
from ..client.private import WORKDIR_NAME
from ..client.view import PROVIDER_ROLES
from ..pipelines.params import Idea2VideoParams, Script2VideoParams
from ..pipelines.request import describe_plan, parse_request
from ..protocol import Collection, ExecutorInfo, ProviderStatus, WorkflowRecord, WorkflowState
from ..shared import format_bytes
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Interrupts,
    connect,
    fail,
    out_folder,
    refuse_providers_file_for,
    say,
    server_refusals,
)
from .display import (
    agents_table,
    collection_table,
    executor_text,
    format_age,
    providers_table,
    spend_total,
    workflows_table,
)
from .follow import deliver, finish, follow

__all__ = [
    "cmd_agents",
    "cmd_gc",
    "cmd_ls",
    "cmd_providers",
    "cmd_resume",
    "cmd_run",
    "cmd_watch",
    "deliver",
    "finish",
]

RESUME_WAIT = 10.0  # seconds to wait for the resumed workflow's first event


# -- run --------------------------------------------------------------------------------


def params_of(args: Any) -> tuple[str, dict[str, Any]]:
    """The workflow kind and its parameters, checked here so bad input starts nothing."""
    if args.kind == "request":
        try:
            plan = parse_request(args.text)
        except ValueError as exc:  # a blank request, ...
            raise CliError(str(exc), EXIT_USAGE) from None
        planned: dict[str, Any] = plan.model_dump()
        chosen = _choices(args)
        planned["providers"] = {**planned["providers"], **chosen.pop("providers", {})}
        planned.update(chosen)
        _check(Idea2VideoParams, planned)
        if not args.quiet:
            say(f"plan: {describe_plan(plan)}")
        return "idea2video", planned
    text = args.text
    if text.startswith("@") and not getattr(args, "literal", False):
        text = read_text_file(text[1:], "idea" if args.kind == "idea2video" else "script")
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
    params.update(_choices(args))
    _check(Idea2VideoParams if args.kind == "idea2video" else Script2VideoParams, params)
    return args.kind, params


def read_text_file(name: str, what: str) -> str:
    """The text of the file ``@name`` names; a :class:`CliError` (exit 2) naming the file
    and the problem in plain words when it cannot be read or is not text."""
    path = Path(name).expanduser()
    problem = f"cannot read the {what} file {name}"
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise CliError(f"{problem}: it is a folder, not a file", EXIT_USAGE) from None
    except FileNotFoundError:
        raise CliError(f"{problem}: there is no such file", EXIT_USAGE) from None
    except PermissionError:
        raise CliError(f"{problem}: this user may not read it", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"{problem}: {exc.strerror or exc}", EXIT_USAGE) from None
    if b"\0" in data:
        raise CliError(f"{problem}: it is not a text file (it holds binary data)", EXIT_USAGE)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"{problem}: it is not UTF-8 text (see byte {exc.start}); save it as UTF-8",
            EXIT_USAGE,
        ) from None


def _choices(args: Any) -> dict[str, Any]:
    """``providers`` (the roles given with --chat, --image, --video) and ``max_cost``,
    for those given."""
    chosen: dict[str, Any] = {}
    providers = {r: getattr(args, r, None) for r in PROVIDER_ROLES if getattr(args, r, None)}
    if providers:
        chosen["providers"] = providers
    if getattr(args, "max_cost", None) is not None:
        chosen["max_cost"] = args.max_cost
    return chosen


def _check(model: type[Idea2VideoParams] | type[Script2VideoParams], params: Any) -> None:
    try:
        model.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise CliError(f"invalid parameters: {problems}", EXIT_USAGE) from None


def check_providers(client: Client, chosen: dict[str, str]) -> None:
    """Refuse (exit 2, before anything starts) a provider the server does not have for
    its role, or has but not ready. A server that does not list its providers checks
    them itself."""
    if not chosen:
        return
    try:
        known = client.providers()
    except VimaxError as exc:
        if exc.status == 404:
            return
        raise
    for role, name in chosen.items():
        of_role = [p for p in known if p.role == role]
        status = next((p for p in of_role if p.provider == name), None)
        if status is None:
            names = ", ".join(p.provider for p in of_role) or "none"
            raise CliError(
                f"--{role} {name}: the server at {client.url} has no {role} provider "
                f"{name!r} (it has: {names}; `vimax-nb providers` lists them)",
                EXIT_USAGE,
            )
        if not status.ready:
            raise CliError(
                f"--{role} {name}: the {role} provider {name!r} of the server at "
                f"{client.url} is not ready: {status.problem or 'no reason given'}",
                EXIT_USAGE,
            )


def cmd_run(args: Any, interrupts: Interrupts) -> int:
    args.out = out_folder(args.out)
    kind, params = params_of(args)
    client = connect(args)
    refuse_providers_file_for(client, args)
    with server_refusals():
        chosen = {r: n for r, n in dict(params.get("providers") or {}).items() if n}
        check_providers(client, chosen)
    interrupts.catch()  # from here Ctrl-C cancels the run
    with server_refusals():
        run = client.submit(kind, priority=args.priority, **params)
    return follow(client, run, args, interrupts, cancel_on_interrupt=True)


def cmd_watch(args: Any, interrupts: Interrupts) -> int:
    args.out = out_folder(args.out)
    client = connect(args, start_server=False)
    interrupts.catch()  # Ctrl-C stops watching; the workflow goes on
    with server_refusals():
        run = client.run(args.id)
    return follow(client, run, args, interrupts, cancel_on_interrupt=False)


def cmd_resume(args: Any, interrupts: Interrupts) -> int:
    """Resume a paused or interrupted workflow, then follow it as ``watch`` does."""
    args.out = out_folder(args.out)
    client = connect(args)
    interrupts.catch()  # Ctrl-C stops watching; the workflow goes on
    try:
        with server_refusals():  # not found, or not resumable (409)
            run = client.run(args.id)
            state = run.resume()
    except (TimeoutError, ConnectionError) as exc:
        raise CliError(f"could not send the resume for workflow {args.id}: {exc}") from None
    if not args.quiet:
        say(f"workflow {run.id} resumed ({state})")
    _left_interrupted(client, run)
    return follow(client, run, args, interrupts, cancel_on_interrupt=False)


def _left_interrupted(client: Client, run: Run) -> None:
    """Wait (bounded, woken by the run's events) until the run has seen it leave
    ``interrupted``, so that ``follow`` does not take the old state for the new one."""
    changed = threading.Event()
    remove = run.on_change(lambda _run: changed.set())
    deadline = time.monotonic() + RESUME_WAIT
    try:
        while run.state == WorkflowState.interrupted and time.monotonic() < deadline:
            changed.wait(max(0.0, deadline - time.monotonic()))
            changed.clear()
    finally:
        remove()
    if run.state == WorkflowState.interrupted:
        fail(f"workflow {run.id} was resumed but no news of it came in {RESUME_WAIT:.0f} s")


# -- ls, agents -------------------------------------------------------------------------


def cmd_ls(args: Any, interrupts: Interrupts) -> int:
    """The workflows newest first: all of them, or the newest ``-n`` and how many more."""
    client = connect(args, start_server=False)
    with server_refusals():
        records, total = newest_workflows(client, args.limit or None)
    records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    more = max(0, total - len(records)) if args.limit else 0
    note = f"{more} more not shown: `vimax-nb ls` without -n lists them all" if more else ""
    if args.json:
        say(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        if note:
            say(note, error=True)
    elif not records:
        say("no workflows yet")
    else:
        cost = bool(getattr(args, "cost", False))
        console = table_console()
        console.print(workflows_table(records, cost=cost))
        if cost:
            console.print(spend_total(records), markup=False, highlight=False)
        if note:
            say(note)
    return EXIT_OK


def newest_workflows(client: Client, limit: int | None) -> tuple[list[WorkflowRecord], int]:
    """The newest ``limit`` workflows (None: all of them), read a page at a time, and how
    many the server listed in all when the first page was read."""
    records: list[WorkflowRecord] = []
    total: int | None = None
    before: str | None = None
    while limit is None or len(records) < limit:
        want = 1000 if limit is None else min(1000, limit - len(records))
        page = client.workflow_page(want, before)
        if total is None:
            total = page.total
        records.extend(page.workflows)
        if page.next is None or not page.workflows:
            break
        before = page.next
    return records, total if total is not None else len(records)


# -- gc ---------------------------------------------------------------------------------


def cmd_gc(args: Any, interrupts: Interrupts) -> int:
    """Remove old finished workflows through the server; exit 1 when some could not be."""
    here = Path.cwd() / WORKDIR_NAME / discovery.DATABASE_NAME
    client = connect(args, start_server=here.is_file())
    try:
        done = client.gc(args.older_than, dry_run=args.dry_run)
    except VimaxError as exc:
        if exc.status == 404:
            raise CliError(
                f"the server at {client.url} does not remove old workflows (it is an older "
                "vimax-nb): upgrade it, or delete finished workflows' folders by hand",
                EXIT_FAILED,
            ) from None
        with server_refusals():
            raise
    if args.json:
        say(json.dumps(done.model_dump(mode="json"), indent=2))
    else:
        _say_collection(done)
    for failure in done.failed:
        fail(f"could not remove workflow {failure.id}: {failure.message}")
    return EXIT_FAILED if done.failed else EXIT_OK


def _say_collection(done: Collection) -> None:
    age = format_age(done.older_than)
    count = len(done.workflows)
    if not count:
        say(
            f"nothing to remove: no completed, failed or canceled workflow ended more than "
            f"{age} ago"
        )
        return
    table_console().print(collection_table(done))
    what = f"{count} workflow{'s' if count != 1 else ''} that ended more than {age} ago"
    if done.dry_run:
        say(
            f"would remove {what}, freeing {format_bytes(done.bytes)}; run without "
            "--dry-run to remove them"
        )
    else:
        say(f"removed {what}, freeing {format_bytes(done.bytes)}")


def cmd_agents(args: Any, interrupts: Interrupts) -> int:
    client = connect(args, start_server=False)
    with server_refusals():
        agents = client.agents()
    if args.json:
        say(json.dumps([a.model_dump(mode="json") for a in agents], indent=2))
        return EXIT_OK
    console = table_console()
    executor = _executor(client)
    if executor is not None:
        console.print(executor_text(executor), soft_wrap=True)
    console.print(agents_table(agents))
    return EXIT_OK


def _executor(client: Client) -> ExecutorInfo | None:
    """Where the server runs tasks (from its coordinator metrics); None when it does not
    say (an older server) or its metrics cannot be read: the agents are shown anyway."""
    try:
        return client.coordinator().executor
    except VimaxError:
        return None


def cmd_providers(args: Any, interrupts: Interrupts) -> int:
    """The server's providers per role, with their readiness."""
    client = connect(args)
    refuse_providers_file_for(client, args)
    try:
        providers = client.providers()
    except VimaxError as exc:
        if exc.status == 404:
            raise CliError(
                f"the server at {client.url} does not list its providers (it is an older "
                "vimax-nb): its configuration says which it uses",
                EXIT_FAILED,
            ) from None
        with server_refusals():
            raise
    providers = _in_role_order(providers)
    if args.json:
        say(json.dumps([p.model_dump(mode="json") for p in providers], indent=2))
    else:
        table_console().print(providers_table(providers))
    return EXIT_OK


def _in_role_order(providers: list[ProviderStatus]) -> list[ProviderStatus]:
    order = {role: i for i, role in enumerate(PROVIDER_ROLES)}
    return sorted(providers, key=lambda p: (order.get(p.role, len(order)), p.role))


def table_console() -> Console:
    """A console for tables: the terminal's width, or wide enough not to fold in a pipe."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=200)
