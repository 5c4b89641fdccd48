"""What a workflow spends on provider calls: :class:`Spend`, added to from task threads."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..protocol import CostSummary, ModelSpend

__all__ = ["OverBudget", "Spend"]


class OverBudget(Exception):
    """A reservation would take the workflow over its ``max_cost``."""

    def __init__(self, amount: float, committed: float, max_cost: float) -> None:
        super().__init__(
            f"this call would cost about ${amount:.2f}, taking the workflow's spend from "
            f"${committed:.2f} over its max_cost of ${max_cost:.2f}"
        )
        self.amount = amount
        self.committed = committed
        self.max_cost = max_cost


class Spend:
    """A workflow's estimated spend in US dollars, per model, and its budget.

    Thread-safe. A paid call first :meth:`reserve` s its estimated cost (refused with
    :class:`OverBudget` when spent + reserved + the estimate would pass ``max_cost``),
    then :meth:`add` s what it really used and releases the reservation; a call that
    failed :meth:`release` s it. ``on_change`` is called (from the adding thread) after
    every :meth:`add`.
    """

    def __init__(
        self,
        summary: CostSummary | None = None,
        *,
        max_cost: float | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._summary = (summary or CostSummary()).model_copy(deep=True)
        self._summary.max_cost = max_cost
        self._reserved = 0.0
        self._lock = threading.Lock()
        self.on_change = on_change

    @property
    def total(self) -> float:
        """The estimated spend so far."""
        return self._summary.total

    def reserve(self, amount: float) -> None:
        """Hold ``amount`` of the budget for a call about to be sent."""
        with self._lock:
            limit = self._summary.max_cost
            committed = self._summary.total + self._reserved
            if limit is not None and amount > 0 and committed + amount > limit + 1e-9:
                raise OverBudget(amount, committed, limit)
            self._reserved += amount

    def release(self, amount: float) -> None:
        """Give back a reservation whose call was not paid for."""
        with self._lock:
            self._reserved = max(0.0, self._reserved - amount)

    def add(
        self,
        *,
        provider: str,
        model: str,
        role: str,
        cost: float,
        cached: bool = False,
        input_tokens: int = 0,
        output_tokens: int = 0,
        images: int = 0,
        video_seconds: float = 0.0,
        reserved: float = 0.0,
    ) -> float:
        """Count one answered call (releasing its ``reserved`` amount); return the total."""
        with self._lock:
            self._reserved = max(0.0, self._reserved - reserved)
            summary = self._summary
            spent = summary.models.get(model)
            if spent is None:
                spent = summary.models[model] = ModelSpend(provider=provider, role=role)
            spent.calls += 1
            summary.calls += 1
            if cached:
                spent.cached_calls += 1
                summary.cached_calls += 1
            spent.input_tokens += input_tokens
            spent.output_tokens += output_tokens
            spent.images += images
            spent.video_seconds += video_seconds
            spent.cost += cost
            summary.total += cost
            total = summary.total
        if self.on_change is not None:
            self.on_change()
        return total

    def summary(self) -> CostSummary:
        """A copy of the spend as the workflow record carries it."""
        with self._lock:
            return self._summary.model_copy(deep=True)
