"""The Jupyter server extension: configuration, and the life of the orchestration.

Everything runs in the server's Tornado loop: the coordinator, the broadcaster
that stores each event before fanning it out, and the WebSocket hub. They start
with the server (or, in test servers that never run the start hook, with the
first request) and stop with it: running workflows become ``interrupted`` and
the database is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, default

from ..coordinator import Coordinator, Executor, Quotas
from ..coordinator.cleanup import DAY
from ..pipelines import register_vimax
from ..providers import ProviderCatalog
from ..store import Retention, Store
from .access import Ownership
from .broadcaster import Broadcaster
from .hub import Hub, HubLimits
from .providers import configure_providers, probe_providers

if TYPE_CHECKING:
    from ..a2a import A2AService


class VimaxApp(ExtensionApp):
    """vimax-nb inside Jupyter: ``c.VimaxApp.<trait> = ...`` configures it."""

    name = "vimax_nb"
    description = "Launch and watch agentic video-generation workflows from notebooks."
    load_other_extensions = True

    workdir = Unicode(
        help="Where each workflow's files go (<workdir>/<workflow id>/); relative to the "
        "server's root_dir. Default: vimax-work under root_dir."
    ).tag(config=True)
    database = Unicode(
        help="The SQLite database of events and workflows. Default: <workdir>/vimax.sqlite3."
    ).tag(config=True)
    executor = Enum(
        ["local", "dask"],
        default_value="local",
        help="Where tasks run: local (threads of this server) or dask (a Dask distributed "
        'cluster; pip install "vimax-nb[dask]").',
    ).tag(config=True)
    dask_scheduler_address = Unicode(
        help="The Dask scheduler tasks go to (tcp://host:8786). Default: a LocalCluster of "
        "worker processes that starts and stops with the server."
    ).tag(config=True)
    dask_workers = Int(2, help="Worker processes of the LocalCluster.").tag(config=True)
    dask_threads_per_worker = Int(2, help="Threads of each LocalCluster worker.").tag(config=True)
    dask_shared_workdir = Bool(
        True,
        help="Whether Dask workers see the workdir at the same path (a shared filesystem): "
        "then they write files in place; else each task gets the files its inputs name and "
        "sends back those it writes.",
    ).tag(config=True)
    dask_resources = Dict(
        value_trait=Dict(value_trait=Float()),
        help='Dask resources per skill, e.g. {"generate_clip": {"GPU": 1}}; asked for while '
        "some worker declares them.",
    ).tag(config=True)
    max_concurrent_tasks = Int(
        4, help="Tasks running at once, across workflows (with Dask: tasks sent to the cluster)."
    ).tag(config=True)
    max_events_per_room = Int(
        50_000, help="Events the log keeps per room; reconnecting clients replay from it."
    ).tag(config=True)
    max_event_age = Float(7 * 24 * 3600.0, help="Seconds the log keeps an event.").tag(config=True)
    send_queue_limit = Int(
        1024 * 1024, help="Bytes queued for one WebSocket client before it is closed (4008)."
    ).tag(config=True)
    heartbeat_interval = Float(
        30.0,
        help="Seconds between WebSocket pings; a client that does not answer one "
        "before the next is dropped.",
    ).tag(config=True)
    rate_limit = Float(
        50.0,
        help="Messages per second a client may send, sustained; those over it are dropped, "
        "and the client is told so by a rate_limited error (at most one a second).",
    ).tag(config=True)
    rate_burst = Int(100, help="Messages a client may send at once above the rate.").tag(
        config=True
    )
    rate_abuse_window = Float(
        5.0,
        help="Seconds of abuse before a client is closed (4029): its dropped messages, less "
        "rate_limit for every second, may add up to rate_limit x rate_abuse_window; one more "
        "closes it. Sending at k times the rate (k > 2) is closed about "
        "rate_abuse_window / (k - 2) s after the burst is spent; a client within the rate "
        "never is.",
    ).tag(config=True)
    max_frame_size = Int(
        64 * 1024, help="Largest WebSocket message accepted from a client, in bytes (1009)."
    ).tag(config=True)
    compression = Bool(
        True,
        help="Agree to permessage-deflate when a client offers it, always without context "
        "takeover: each message is compressed once for every client.",
    ).tag(config=True)
    compression_threshold = Int(
        512,
        help="Messages shorter than this many bytes go uncompressed even when "
        "permessage-deflate was agreed: a run's progress events (about 800 bytes) go "
        "compressed, its artifact and metrics events (about 300) as they are.",
    ).tag(config=True)
    freeze_gc = Bool(
        True,
        help="Move the objects alive once everything has started out of the garbage "
        "collector's reach (gc.freeze): a full collection of a Jupyter server's ~250,000 "
        "objects otherwise stalls the loop, and every WebSocket, for 150-250 ms.",
    ).tag(config=True)
    chat_provider = Unicode(
        help="The chat provider of workflows that pick none: procedural, openai or google. "
        "Default: the providers file's, else procedural."
    ).tag(config=True)
    image_provider = Unicode(
        help="The image provider of workflows that pick none: procedural, openai, google or "
        "replicate. Default: the providers file's, else procedural."
    ).tag(config=True)
    video_provider = Unicode(
        help="The video provider of workflows that pick none: procedural, google or "
        "replicate. Default: the providers file's, else procedural."
    ).tag(config=True)
    providers_file = Unicode(
        help="A YAML or TOML file configuring the providers (ViMax's config keys are "
        "understood): each role's provider, model, key, base URL and rate limit, more "
        "providers to pick from, prices, the cache and max_cost. Relative to root_dir."
    ).tag(config=True)
    cache_roles = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help="The roles (chat, image, video) whose hosted results are cached across "
        "workflows, in <workdir>/cache. Default: the providers file's, else all three.",
    ).tag(config=True)
    max_cost = Float(
        None,
        allow_none=True,
        help="US dollars a workflow may spend on provider calls unless it sets its own "
        "max_cost. Default: the providers file's, else no limit.",
    ).tag(config=True)
    max_active_workflows_per_user = Int(
        8,
        help="Workflows one user may have queued, running or paused at once; one more is "
        "refused with 429 (Retry-After) until one ends or is canceled. 0: no limit.",
    ).tag(config=True)
    max_active_workflows = Int(
        32,
        help="Workflows the server takes queued, running or paused at once, of all users; "
        "one more is refused with 429 (Retry-After). 0: no limit.",
    ).tag(config=True)
    max_workflow_pixels = Int(
        100_000_000_000,
        help="Pixels one workflow may render: width x height x fps x seconds_per_shot x "
        "shots_per_scene x scenes; a bigger one is refused with 422. The default, 10^11, "
        "is 48,225 frames of 1920x1080 (33 minutes at 24 fps) or 12,056 of 3840x2160. "
        "0: no limit.",
    ).tag(config=True)
    max_workdir_bytes = Int(
        50_000_000_000,
        help="Bytes the workdir (every workflow's files, the database, the cache) may hold; "
        "at or over it new workflows are refused with 507 until finished ones are removed "
        "(`vimax-nb gc`, POST /vimax/api/gc). Default 50 GB. 0: no limit.",
    ).tag(config=True)
    retention_days = Float(
        7.0,
        help="Age (days since it ended) past which `vimax-nb gc` and POST /vimax/api/gc "
        "remove a completed, failed or canceled workflow and its files, unless told another "
        "age; the automatic collection (gc_interval) uses it too.",
    ).tag(config=True)
    gc_interval = Float(
        0.0,
        help="Seconds between automatic collections of the workflows that ended more than "
        "retention_days ago (their records and files are removed). 0 (the default): never; "
        "only `vimax-nb gc` removes workflows.",
    ).tag(config=True)
    probe_providers = Bool(
        True,
        help="Ask each hosted provider's service at start whether it answers, and report "
        "the answer in the log and GET /vimax/api/providers.",
    ).tag(config=True)
    owner_only = Bool(
        False,
        help="Each user sees and controls only the workflows they started (others' answer "
        "404, as unknown ones do); admins (server_user and admin_users) see them all. Useful "
        "when the identity provider tells people apart (JupyterHub, a custom "
        "IdentityProvider): with Jupyter's own, every request is server_user.",
    ).tag(config=True)
    admin_users = List(
        Unicode(),
        help="Usernames (as the identity provider names them) that see and control every "
        "workflow when owner_only is on, and the hub's connections (GET /vimax/ws/stats).",
    ).tag(config=True)
    server_user = Unicode(
        help="The owner of the workflows started by the server's single user: whoever "
        "Jupyter's own identity providers let in with the server's token or password (they "
        "name each such request a random 'Anonymous' user). Always an admin. Default: the "
        "operating-system user running the server."
    ).tag(config=True)

    @default("server_user")
    def _default_server_user(self) -> str:
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # no login name and no password-database entry
            return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "jupyter"

    @default("workdir")
    def _default_workdir(self) -> str:
        root = getattr(self.serverapp, "root_dir", None) or os.getcwd()
        return str(Path(root) / "vimax-work")

    def initialize_settings(self) -> None:
        self.service = VimaxService(self)
        self.settings["vimax"] = self.service

    def initialize_handlers(self) -> None:
        from .handlers import default_handlers

        self.handlers.extend(default_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        await self.service.ensure_started()

    async def stop_extension(self) -> None:
        await self.service.stop()


class VimaxService:
    """The running orchestration that handlers reach through ``settings["vimax"]``."""

    def __init__(self, app: VimaxApp) -> None:
        self.app = app
        self.root = Path(getattr(app.serverapp, "root_dir", None) or os.getcwd())
        self.workdir = (self.root / app.workdir).resolve()
        self.database = Path(app.database) if app.database else self.workdir / "vimax.sqlite3"
        self.ownership = Ownership(
            server_user=app.server_user,
            owner_only=app.owner_only,
            admin_users=frozenset(app.admin_users),
        )
        self.store: Store | None = None
        self.coordinator: Coordinator | None = None
        self.catalog: ProviderCatalog | None = None
        self.broadcaster: Broadcaster | None = None
        self._probes: asyncio.Task[None] | None = None
        self.hub = Hub(
            HubLimits(
                send_queue_limit=app.send_queue_limit,
                rate_limit=app.rate_limit,
                rate_burst=app.rate_burst,
                rate_abuse_window=app.rate_abuse_window,
                heartbeat_interval=app.heartbeat_interval,
                max_frame_size=app.max_frame_size,
                compression=app.compression,
                compression_threshold=app.compression_threshold,
            )
        )
        self._started: asyncio.Task[None] | None = None
        self._a2a: asyncio.Future[A2AService] | None = None

    async def ensure_started(self) -> None:
        """Start everything once; later calls wait for that start."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        app = self.app
        self.workdir.mkdir(parents=True, exist_ok=True)
        retention = Retention(
            max_events_per_room=app.max_events_per_room, max_age=app.max_event_age
        )
        self.store = await Store.open(self.database, retention=retention)
        # A hosted provider's SDK is imported only when that provider is configured.
        catalog, max_cost = await asyncio.to_thread(
            configure_providers, app, self.root, self.workdir
        )
        self.catalog = catalog
        self.coordinator = Coordinator(
            store=self.store,
            workdir=self.workdir,
            executor=self._executor(),
            max_concurrent_tasks=app.max_concurrent_tasks,
            artifact_url_prefix=url_path_join(
                getattr(app.serverapp, "base_url", None) or "/", "vimax/api/workflows"
            ),
            quotas=Quotas(
                max_active_workflows_per_user=app.max_active_workflows_per_user,
                max_active_workflows=app.max_active_workflows,
                max_workflow_pixels=app.max_workflow_pixels,
                max_workdir_bytes=app.max_workdir_bytes,
                setting="c.VimaxApp.{name}",
            ),
            retention_age=app.retention_days * DAY,
            collect_interval=app.gc_interval,
        )
        register_vimax(self.coordinator, catalog, max_cost=max_cost)
        self.broadcaster = Broadcaster(self.coordinator, self.store.events, self.hub)
        await self.coordinator.start()
        if app.probe_providers:
            self._probes = asyncio.ensure_future(
                probe_providers(catalog, self.coordinator, app.log)
            )
        if app.freeze_gc:
            gc.collect()
            gc.freeze()
        app.log.info("vimax-nb: workflows in %s, events in %s", self.workdir, self.database)

    def _executor(self) -> Executor | None:
        """The executor the traits ask for (None: the coordinator's local one)."""
        app = self.app
        if app.executor == "local":
            return None
        try:
            from ..coordinator.dask import DaskExecutor
        except ImportError as exc:
            raise RuntimeError(
                f'c.VimaxApp.executor = "dask" needs Dask: pip install "vimax-nb[dask]" ({exc})'
            ) from None
        return DaskExecutor(
            app.dask_scheduler_address or None,
            workers=app.dask_workers,
            threads_per_worker=app.dask_threads_per_worker,
            shared_workdir=app.dask_shared_workdir,
            resources=app.dask_resources,
        )

    async def a2a(self) -> A2AService:
        """vimax-nb's A2A agent (:mod:`vimax_nb.a2a`), opened on first use: the a2a-sdk
        is imported only by a server that is asked to speak A2A."""
        failed = (
            self._a2a is not None
            and self._a2a.done()
            and (self._a2a.cancelled() or self._a2a.exception() is not None)
        )
        if self._a2a is None or failed:
            self._a2a = asyncio.ensure_future(self._open_a2a())
        return await asyncio.shield(self._a2a)

    async def _open_a2a(self) -> A2AService:
        await self.ensure_started()
        from ..a2a import A2AService

        assert self.coordinator is not None
        assert self.store is not None
        return await A2AService.open(self.coordinator, self.store)

    async def stop(self) -> None:
        """Stop the coordinator (running workflows become interrupted), the A2A agent,
        close the hub's connections and the database."""
        started, self._started = self._started, None
        if started is None:
            return
        try:
            await started
        except Exception:
            self.app.log.exception("vimax-nb did not start; nothing to stop")
            return
        assert self.coordinator is not None
        assert self.store is not None
        if self._probes is not None:
            self._probes.cancel()
        await self.coordinator.stop()
        a2a, self._a2a = self._a2a, None
        if a2a is not None:
            with contextlib.suppress(Exception):  # it did not open: nothing to close
                await (await a2a).close()
        self.hub.close_all()
        if self.broadcaster is not None:
            self.broadcaster.close()
        await self.store.close()
