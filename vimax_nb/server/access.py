"""Who a request acts for and which workflows it sees: the owner of a workflow, the
``c.VimaxApp.owner_only`` rule, and the words of an authorization refusal.

Kept free of Tornado and Jupyter so that the REST handlers and the WebSocket session
(which gets only its results) share one rule.

The owner of a workflow is the Jupyter user who submitted it, by username, except for
the users Jupyter makes up: Jupyter's own identity providers do not tell people apart.
Whoever holds the server's token or password is the server's single user, yet they
give each token-authenticated request (and each browser login) a new random user
("Anonymous Io", username a random 32-digit hex). Such a user stands for the server's
user, ``c.VimaxApp.server_user`` (by default the operating-system user running the
server). Any other user (JupyterHub's, a custom ``IdentityProvider``'s) is its
``username``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..protocol import WorkflowRecord

# jupyter_server.auth.IdentityProvider.generate_anonymous_user: User(uuid4().hex,
# f"Anonymous {moon}", ...)
_MADE_UP_USERNAME = re.compile(r"[0-9a-f]{32}")
_MADE_UP_NAME_PREFIX = "Anonymous "

#: What each authorization action allows, for refusals.
ACTION_PURPOSES = {
    "read": "watching workflows, agents and the coordinator",
    "write": "starting, pausing, resuming and canceling workflows",
}


def made_up_by_jupyter(user: object) -> bool:
    """Whether ``user`` is one Jupyter invented for an anonymous holder of the server's
    token or password (``IdentityProvider.generate_anonymous_user``): it names nobody."""
    username = getattr(user, "username", None)
    name = getattr(user, "name", None)
    return (
        isinstance(username, str)
        and _MADE_UP_USERNAME.fullmatch(username) is not None
        and isinstance(name, str)
        and name.startswith(_MADE_UP_NAME_PREFIX)
    )


def refusal(owner: str | None, action: str) -> str:
    """The message of a refused ``action`` (``read``, ``write``) on the ``vimax`` resource."""
    purpose = ACTION_PURPOSES.get(action, action)
    who = f"Jupyter user {owner!r}" if owner else "this Jupyter user"
    return (
        f"not allowed: {who} may not {action} vimax ({purpose} needs the {action!r} "
        "permission on the 'vimax' resource); ask whoever runs this Jupyter server"
    )


def visible(record: WorkflowRecord, scope: str | None) -> bool:
    """Whether a user whose owner scope is ``scope`` (see :meth:`Ownership.scope`) sees,
    and so may act on, the workflow ``record``."""
    return scope is None or record.owner == scope


@dataclass(frozen=True, slots=True)
class Ownership:
    """One server's owner rule, from ``VimaxApp``'s traits.

    ``server_user`` is the owner name of the users Jupyter makes up; ``owner_only``
    limits each user to their own workflows, except the admins: ``admin_users`` and
    ``server_user``.
    """

    server_user: str
    owner_only: bool = False
    admin_users: frozenset[str] = frozenset()

    def owner_of(self, user: object) -> str | None:
        """The owner name of an authenticated Jupyter user: ``server_user`` for a user
        Jupyter made up, else its ``username``; None for no user."""
        if user is None:
            return None
        if made_up_by_jupyter(user):
            return self.server_user
        username = getattr(user, "username", None)
        return str(username) if username else str(user)

    def is_admin(self, owner: str | None) -> bool:
        """Whether ``owner`` sees and controls every workflow even with ``owner_only``."""
        return owner is not None and (owner == self.server_user or owner in self.admin_users)

    def scope(self, owner: str | None) -> str | None:
        """Whose workflows ``owner`` sees and controls: None for every workflow (when
        ``owner_only`` is off, and for admins), else ``owner`` itself.

        An unauthenticated caller (``owner`` None) gets an owner no workflow has."""
        if not self.owner_only or self.is_admin(owner):
            return None
        return owner if owner is not None else ""
