"""How a ViMax agent calls a provider for a task: the model the workflow chose, the
budget and spend of the workflow, what the call waits on, and its remote job."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..coordinator import TaskContext
from ..coordinator.spend import OverBudget
from ..protocol import ProviderStatus
from ..providers import ProviderCatalog, ProviderEntry, ProviderError, Role
from ..providers.base import ROLES, BudgetExceeded, ProviderCall, Usage
from ..providers.prices import PriceTable

__all__ = ["check_providers", "chosen_model", "provider_call", "provider_status"]


def chosen_name(params: Mapping[str, Any], role: Role) -> str | None:
    """The provider a workflow's parameters pick for ``role`` (None: the default)."""
    choice = params.get("providers") or {}
    name = choice.get(role) if isinstance(choice, Mapping) else None
    return name if isinstance(name, str) and name else None


def chosen_model(catalog: ProviderCatalog, ctx: TaskContext, role: Role) -> Any:
    """The ready model the task's workflow uses for ``role``; raises the provider's
    problem (not retryable) when it is not ready."""
    return catalog.model(role, chosen_name(ctx.workflow_params, role))


class _Ledger:
    """Prices a call's usage, reserves its estimate in the workflow's budget first, and
    adds what it used to the workflow's spend."""

    def __init__(self, ctx: TaskContext, prices: PriceTable) -> None:
        self.ctx = ctx
        self.prices = prices
        self.reserved = 0.0

    def authorize(self, usage: Usage) -> None:
        estimate = self.prices.price(usage).cost
        try:
            self.ctx.spend.reserve(estimate)
        except OverBudget as exc:
            raise BudgetExceeded(
                f"{usage.model}: not sent: {exc}", provider=usage.provider
            ) from None
        self.reserved += estimate

    def record(self, usage: Usage) -> None:
        priced = self.prices.price(usage)
        fields = dataclasses.asdict(priced)
        self.ctx.spend.add(**fields, reserved=self.reserved)
        self.reserved = 0.0

    def release(self) -> None:
        self.ctx.spend.release(self.reserved)
        self.reserved = 0.0


@contextmanager
def provider_call(
    ctx: TaskContext, prices: PriceTable, *, remote_job: bool = False
) -> Iterator[ProviderCall]:
    """The :class:`ProviderCall` for one provider call of task ``ctx``.

    The call is priced with ``prices`` against the workflow's ``max_cost`` (a request
    that would pass it is refused before it is sent) and its usage added to the
    workflow's spend; what it waits on shows as the task's activity, cleared when the
    call ends. With ``remote_job`` the call may keep its remote job's id in the task's
    job slot (one such call per task); the slot is emptied when the task is canceled,
    and kept when the server stops (the resumed workflow polls the same job).
    """
    ledger = _Ledger(ctx, prices)
    reported = False

    def report(activity: str) -> None:
        nonlocal reported
        reported = True
        ctx.report(activity)

    call = ProviderCall(
        cancel_token=ctx.cancel_token,
        seed=int(ctx.workflow_params.get("seed", 0)),
        on_usage=ledger.record,
        on_progress=report,
        budget=ledger.authorize,
        job=ctx.job if remote_job else None,
    )
    try:
        yield call
    finally:
        ledger.release()
        if reported:
            ctx.report("")
        token = ctx.cancel_token
        if remote_job and token.cancelled and not token.interrupted:
            ctx.job.set(None)  # a canceled task's job is never resumed


def provider_status(entry: ProviderEntry) -> ProviderStatus:
    """``entry`` as the protocol reports it."""
    return ProviderStatus(
        role=entry.role,
        provider=entry.name,
        model=entry.model_name,
        ready=entry.ready,
        problem=entry.problem,
        default=entry.default,
    )


async def check_providers(catalog: ProviderCatalog, params: Mapping[str, Any]) -> None:
    """Raise :class:`ProviderError` saying what stops a workflow with ``params`` from
    starting: a provider it picks that the server does not have, or one that is not
    ready (one whose last probe failed is probed again first, in a worker thread), or a
    ``max_cost`` that cannot be kept because a hosted model has no price."""
    for role in ROLES:
        entry = catalog.entry(role, chosen_name(params, role))
        if entry.model is not None and entry.problem is not None and entry.probed:
            await asyncio.to_thread(catalog.probe, entry)
        if not entry.ready:
            raise ProviderError(
                f"the {role} provider {entry.name!r} is not ready: {entry.problem}",
                provider=entry.name,
            )
        if params.get("max_cost") is not None and catalog.prices.unpriced(
            entry.model_name, entry.name
        ):
            raise ProviderError(
                f"max_cost cannot be kept: the {role} model {entry.model_name!r} has no price; "
                "give it one under prices: in the providers file",
                provider=entry.name,
            )
