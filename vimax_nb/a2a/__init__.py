"""A2A 1.0 on the wire: other agents commission films from vimax-nb and follow them.

Server side only, with the official ``a2a-sdk``: its types, its request handler
(``DefaultRequestHandler``) and its task life cycle, over vimax's coordinator, workflow
store and durable event log. A task is a workflow (the same id); its updates are the
workflow's events. The Tornado handlers are in :mod:`vimax_nb.server.a2a`.

Modules: :mod:`.card` (agent cards), :mod:`.commission` (what a message asks for),
:mod:`.updates` (workflow events as A2A updates), :mod:`.follow` (a room of the log,
gap-free), :mod:`.tasks` (the task store), :mod:`.executor` (the agent executor),
:mod:`.handler` (the request handler), :mod:`.jsonrpc` (the JSON-RPC binding),
:mod:`.errors`, :mod:`.caller`, :mod:`.service` (all of it, opened and closed).
"""

from __future__ import annotations

from .caller import Caller
from .service import A2AService, Answer, Stream

__all__ = ["A2AService", "Answer", "Caller", "Stream"]
