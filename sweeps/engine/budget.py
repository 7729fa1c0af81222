"""Token and cost budget for a sweep: reserve an estimate before a call, settle the actual after.

Reserving first is what keeps concurrent calls honest: every call in flight holds its estimate,
so `spent + reserved` never exceeds a limit, and the sweep can overshoot only by how much the
calls in flight end up using beyond their estimates.

The executor talks to a BudgetLedger. `Budget` below is the in-process one (one worker, or the
embedded mode); sweeps.runner.budget holds the ledger every worker of a sweep shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Reservation:
    tokens: int
    cost: float
    id: int = field(default=0, compare=False)  # names it in a shared ledger
    # Settling or releasing twice would free the estimate twice and open room the budget does
    # not have, so a reservation can be closed exactly once.
    closed: bool = field(default=False, init=False, compare=False)


class BudgetLedger(Protocol):
    """Where a sweep's calls reserve their estimates. `exhausted_reason` ("token_budget" or
    "cost_budget") is set once a reservation was refused: the sweep pauses with it."""

    exhausted_reason: str | None

    async def reserve(self, tokens: int, cost: float) -> Reservation | None: ...
    async def settle(self, reservation: Reservation, tokens: int, cost: float) -> None: ...
    async def release(self, reservation: Reservation) -> None: ...
    async def aclose(self) -> None: ...


class Budget:
    """The in-process ledger: one event loop drives it, and no method awaits, so each runs to
    completion without interleaving and no lock is needed."""

    def __init__(
        self,
        *,
        max_tokens: int | None,
        max_cost_usd: float | None,
        spent_tokens: int = 0,
        spent_cost: float = 0.0,
    ) -> None:
        # None means no limit. A resumed sweep passes what it has already spent.
        self.max_tokens = max_tokens
        self.max_cost_usd = max_cost_usd
        self._spent_tokens = spent_tokens
        self._spent_cost = spent_cost
        self._reserved_tokens = 0
        self._reserved_cost = 0.0
        # Stays set once a reservation is refused: the sweep pauses with this reason.
        self.exhausted_reason: str | None = None

    @property
    def spent_tokens(self) -> int:
        return self._spent_tokens

    @property
    def spent_cost(self) -> float:
        return self._spent_cost

    @property
    def reserved_tokens(self) -> int:
        return self._reserved_tokens

    @property
    def reserved_cost(self) -> float:
        return self._reserved_cost

    async def reserve(self, tokens: int, cost: float) -> Reservation | None:
        """Hold an estimate for one call, or return None when it would exceed a limit."""
        if self.max_tokens is not None and (self._spent_tokens + self._reserved_tokens + tokens > self.max_tokens):
            self.exhausted_reason = "token_budget"
            return None
        if self.max_cost_usd is not None and (self._spent_cost + self._reserved_cost + cost > self.max_cost_usd):
            self.exhausted_reason = "cost_budget"
            return None
        self._reserved_tokens += tokens
        self._reserved_cost += cost
        return Reservation(tokens, cost)

    async def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        """The call finished: replace its estimate by what it actually used."""
        self._close(reservation)
        self._spent_tokens += tokens
        self._spent_cost += cost

    async def release(self, reservation: Reservation) -> None:
        """The call failed and nothing was spent: free its estimate."""
        self._close(reservation)

    async def aclose(self) -> None:
        pass

    def _close(self, reservation: Reservation) -> None:
        if reservation.closed:
            raise RuntimeError("reservation was already settled or released")
        reservation.closed = True
        self._reserved_tokens -= reservation.tokens
        self._reserved_cost -= reservation.cost


def estimate_tokens(text: str) -> int:
    """A cheap guess, about 4 characters per token of English; at least 1, so every call reserves."""
    return max(1, (len(text) + 3) // 4)
