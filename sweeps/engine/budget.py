"""Token and cost budget for a sweep: reserve an estimate before a call, settle the actual after.

Reserving first is what keeps concurrent calls honest: every call in flight holds its estimate,
so `spent + reserved` never exceeds a limit, and the sweep can overshoot only by how much the
calls in flight end up using beyond their estimates.

The executor drives one Budget from one event loop. No method awaits, so each one runs to
completion without interleaving and no lock is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Reservation:
    tokens: int
    cost: float
    # Settling or releasing twice would free the estimate twice and open room the budget does
    # not have, so a reservation can be closed exactly once.
    closed: bool = field(default=False, init=False, compare=False)


class Budget:
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

    def reserve(self, tokens: int, cost: float) -> Reservation | None:
        """Hold an estimate for one call, or return None when it would exceed a limit."""
        if self.max_tokens is not None and (
            self._spent_tokens + self._reserved_tokens + tokens > self.max_tokens
        ):
            self.exhausted_reason = "token_budget"
            return None
        if self.max_cost_usd is not None and (
            self._spent_cost + self._reserved_cost + cost > self.max_cost_usd
        ):
            self.exhausted_reason = "cost_budget"
            return None
        self._reserved_tokens += tokens
        self._reserved_cost += cost
        return Reservation(tokens, cost)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        """The call finished: replace its estimate by what it actually used."""
        self._close(reservation)
        self._spent_tokens += tokens
        self._spent_cost += cost

    def release(self, reservation: Reservation) -> None:
        """The call failed and nothing was spent: free its estimate."""
        self._close(reservation)

    def _close(self, reservation: Reservation) -> None:
        if reservation.closed:
            raise RuntimeError("reservation was already settled or released")
        reservation.closed = True
        self._reserved_tokens -= reservation.tokens
        self._reserved_cost -= reservation.cost


def estimate_tokens(text: str) -> int:
    """A cheap guess, about 4 characters per token of English; at least 1, so every call reserves."""
    return max(1, (len(text) + 3) // 4)
