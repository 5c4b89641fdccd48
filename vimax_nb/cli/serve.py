"""``vimax-nb serve``: a Jupyter server with the extension, in the foreground, for a folder."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import IO, Any

from ..client import discovery
from ..client.private import WORKDIR_NAME, PrivateServer
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, Interrupts, private_server_args, say

DEFAULT_PORT = 8888


def _port(ip: str, wanted: int) -> int:
    """``wanted`` if it is free (0: any free port), else a free port.

    The probe sets SO_REUSEADDR, as the server's own socket does: a port whose last
    connections are in TIME_WAIT (a server just stopped) is free for the server, and
    must not look busy here."""
    if wanted:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((ip or "127.0.0.1", wanted))
            except OSError:
                pass
            else:
                return wanted
    with socket.socket() as sock:
        sock.bind((ip or "127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _output() -> IO[Any]:
    """Where the server's log goes: this process's stderr."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ or sys.stderr
    return sys.stderr


def provider_args(args: Any) -> list[str]:
    """Server options for ``--chat``, ``--image``, ``--video`` (the roles' default
    providers) and ``--providers FILE`` (checked here: a clear error before anything
    starts)."""
    options = [
        f"--VimaxApp.{role}_provider={getattr(args, role)}"
        for role in ("chat", "image", "video")
        if getattr(args, role, None)
    ]
    return options + private_server_args(args)


def cmd_serve(args: Any, interrupts: Interrupts) -> int:
    folder = Path(args.dir).resolve() if args.dir else Path.cwd().resolve()
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder", EXIT_USAGE)
    existing = discovery.folder_server(folder)
    if existing is not None:
        client, pid = existing
        raise CliError(
            f"{folder} is already served by pid {pid} at {client.url}; "
            "`vimax-nb run`, `ls`, ... in this folder use it"
        )
    extra = list(args.server_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    options = provider_args(args)
    if args.scheduler and args.executor != "dask":
        raise CliError("--scheduler ADDRESS goes with --executor dask", EXIT_USAGE)
    if args.executor:
        options.append(f"--VimaxApp.executor={args.executor}")
    if args.scheduler:
        options.append(f"--VimaxApp.dask_scheduler_address={args.scheduler}")
    port = _port(args.ip, args.port)
    if args.port and port != args.port:
        say(f"port {args.port} is in use; serving on {port}")
    server = PrivateServer(
        folder,
        ip=args.ip,
        port=port,
        token=args.token,
        server_args=[f"--ServerApp.log_level={args.log_level}", *options, *extra],
        log=_output(),
    )
    interrupts.catch()  # Ctrl-C stops the server cleanly
    try:
        client = server.start(timeout=args.timeout)
    except (OSError, RuntimeError, TimeoutError) as exc:
        server.stop()
        raise CliError(f"the server did not start: {exc}") from None
    client.close()
    workdir = folder / WORKDIR_NAME
    say(f"vimax-nb server for {folder} (pid {server.pid}), ready in {server.startup_seconds:.1f} s")
    say(f"  url:     {server.url}")
    say(f"  token:   {server.token}")
    say(f"  files:   {workdir}")
    say("`vimax-nb run ...` in this folder uses it; from elsewhere:")
    say(f"  export VIMAX_NB_URL={server.url} VIMAX_NB_TOKEN={server.token}")
    say("Ctrl-C stops it.")
    while server.running and not interrupts.flag.is_set():
        interrupts.wake.wait(1.0)
        interrupts.wake.clear()
    if not interrupts.flag.is_set():
        code = server.stop()
        raise CliError(f"the server exited on its own (code {code})", EXIT_FAILED)
    say("stopping the server (running workflows become interrupted)...")
    interrupts.on_hard_exit.append(lambda: _kill(server))
    code = server.stop(timeout=15.0)
    say(f"stopped (code {code})")
    return EXIT_OK


def _kill(server: PrivateServer) -> None:
    if server.process is not None and server.process.poll() is None:
        server.process.kill()
