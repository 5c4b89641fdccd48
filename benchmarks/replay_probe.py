"""A benchmark-only Jupyter server extension for ``replay_missed.py`` (never installed).

Enabled next to ``vimax_nb.server`` with ``benchmarks/`` on ``PYTHONPATH``, it adds one
token-authenticated endpoint: ``POST /vimax-replay/profile?action=start|stop&top=N``.
``start`` runs cProfile on the server's loop thread (where the hub replays); ``stop``
ends it and answers ``{"text": ...}``, the ``N`` functions with the most time of their
own (pstats' ``tottime`` order), with their callers' share in the cumulative column.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web


class _Profile:
    running: cProfile.Profile | None = None


class ProfileHandler(APIHandler):
    @web.authenticated
    def post(self) -> None:
        action = self.get_argument("action")
        answer: dict[str, Any]
        if action == "start":
            if _Profile.running is None:
                _Profile.running = cProfile.Profile()
                _Profile.running.enable()
            answer = {"profiling": True}
        else:
            profile, _Profile.running = _Profile.running, None
            if profile is None:
                raise web.HTTPError(400, "no profile is running")
            profile.disable()
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("tottime").print_stats(int(self.get_argument("top", "25")))
            answer = {"text": out.getvalue()}
        self.set_header("Content-Type", "application/json")
        self.finish(answer)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "replay_probe"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    base = web_app.settings.get("base_url", "/")
    web_app.add_handlers(".*$", [(url_path_join(base, "vimax-replay", "profile"), ProfileHandler)])
