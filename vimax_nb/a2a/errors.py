"""The JSON-RPC errors vimax-nb adds to A2A's, and how a refused workflow is told.

A2A names its errors -32001 to -32009 (task not found, not cancelable, ...), JSON-RPC
-32600 to -32603 and -32700. vimax-nb adds two, in the range JSON-RPC leaves to servers,
away from A2A's: a method the caller's Jupyter permissions do not allow, and a workflow
a quota refuses. Both carry a ``google.rpc.ErrorInfo`` in ``data``, as A2A's errors do,
with the figures a client needs (``quota``, ``limit``, ``figure``, ``retryAfter``).
"""

from __future__ import annotations

from typing import Any

from a2a.server.jsonrpc_models import JSONRPCError
from a2a.utils.errors import A2AError, InvalidParamsError

from ..coordinator import QuotaExceeded, WorkflowTooLarge

#: The caller's Jupyter user may not do this (``write`` on ``vimax`` to start or cancel).
NOT_ALLOWED = -32090
#: A quota refused the workflow (too many running; the workdir is full).
QUOTA_EXCEEDED = -32091

ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
DOMAIN = "vimax-nb"


class VimaxRpcError(Exception):
    """An error of vimax-nb's own code, answered as a JSON-RPC error."""

    def __init__(self, code: int, reason: str, message: str, **metadata: Any) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = {k: str(v) for k, v in metadata.items() if v is not None}

    def to_jsonrpc(self) -> JSONRPCError:
        """The JSON-RPC error object."""
        info = {
            "@type": ERROR_INFO_TYPE,
            "reason": self.reason,
            "domain": DOMAIN,
            "metadata": self.metadata,
        }
        return JSONRPCError(code=self.code, message=self.message, data=[info])


def not_allowed(message: str) -> VimaxRpcError:
    """The caller's permissions refuse the method; ``message`` says which is missing."""
    return VimaxRpcError(NOT_ALLOWED, "NOT_ALLOWED", message)


def refused_workflow(exc: QuotaExceeded) -> A2AError | VimaxRpcError:
    """The error of a workflow a quota refused: invalid parameters for one too large
    (asking again will not help), else :data:`QUOTA_EXCEEDED` (with ``retryAfter`` when
    asking again later may succeed: a workflow has to end first)."""
    figures = {"quota": exc.quota, "limit": exc.limit, "figure": exc.figure}
    if isinstance(exc, WorkflowTooLarge):
        return InvalidParamsError(message=str(exc), data=figures)
    return VimaxRpcError(
        QUOTA_EXCEEDED, "QUOTA_EXCEEDED", str(exc), **figures, retryAfter=exc.retry_after
    )
