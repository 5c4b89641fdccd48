"""Who an A2A call is made by, as the request handler and the task store see it."""

from __future__ import annotations

from dataclasses import dataclass

from a2a.auth.user import User
from a2a.server.context import ServerCallContext

from ..protocol import WorkflowRecord

#: The key of :class:`Caller` in ``ServerCallContext.state``.
CALLER = "vimax.caller"


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller of an A2A method.

    ``owner`` owns the workflows it starts (the Jupyter username, or the server's user
    for the users Jupyter makes up); ``scope`` is whose workflows it sees (None: every
    one); ``origin`` (``http://host:port``) is put in front of artifact URLs.
    """

    owner: str | None
    scope: str | None
    origin: str

    def sees(self, record: WorkflowRecord) -> bool:
        """Whether the caller sees (and so may act on) the workflow ``record``: the
        server's owner rule (``vimax_nb.server.access.visible``) on its ``scope``."""
        return self.scope is None or record.owner == self.scope


#: Who a call with no caller is: nobody, who sees nothing.
NOBODY = Caller(owner=None, scope="", origin="")


def caller_of(context: ServerCallContext | None) -> Caller:
    """The caller the server put in ``context`` (:data:`NOBODY` when there is none)."""
    if context is None:
        return NOBODY
    caller = context.state.get(CALLER)
    return caller if isinstance(caller, Caller) else NOBODY


class OwnerUser(User):
    """The SDK's view of the caller: authenticated, named by its owner name."""

    def __init__(self, owner: str | None) -> None:
        self._owner = owner or ""

    @property
    def is_authenticated(self) -> bool:
        return bool(self._owner)

    @property
    def user_name(self) -> str:
        return self._owner


def call_context(caller: Caller, headers: dict[str, str] | None = None) -> ServerCallContext:
    """The SDK's context of a call by ``caller`` with these HTTP ``headers``."""
    return ServerCallContext(
        user=OwnerUser(caller.owner),
        state={CALLER: caller, "headers": {k.lower(): v for k, v in (headers or {}).items()}},
    )
