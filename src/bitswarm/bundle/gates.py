"""A gate's terms as users write them: ``free``, ``email``, ``price=9.95`` or
``crowdfund=250000x9.95,2027-03-01`` (backers x price, deadline). Sans-IO."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from bitswarm.bundle.crowdfund import MAX_GOAL
from bitswarm.bundle.format import BundleError
from bitswarm.bundle.ledger import money

KINDS = ("free", "email", "price", "crowdfund")
_PRICE = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?")


@dataclass(frozen=True, slots=True)
class Gate:
    kind: str
    price: Decimal | None = None
    goal_count: int | None = None
    deadline: date | None = None

    @property
    def deadline_epoch(self) -> int | None:
        """The deadline's end (midnight UTC after the day) in Unix seconds."""
        if self.deadline is None:
            return None
        return int(datetime(self.deadline.year, self.deadline.month, self.deadline.day, tzinfo=UTC).timestamp()) + 86400

    def text(self) -> str:
        if self.kind == "price":
            return f"price={self.price}"
        if self.kind == "crowdfund":
            return f"crowdfund={self.goal_count}x{self.price},{self.deadline}"
        return self.kind


def parse(text: str) -> Gate:
    kind, _, value = text.strip().partition("=")
    if kind in ("free", "email") and not value:
        return Gate(kind)
    if kind == "price" and _PRICE.fullmatch(value):
        return Gate(kind, price=money(value))
    if kind == "crowdfund":
        goal, _, deadline = value.partition(",")
        count, _, price = goal.partition("x")
        if count.isdigit() and 0 < int(count) <= MAX_GOAL and _PRICE.fullmatch(price):
            try:
                return Gate(kind, price=money(price), goal_count=int(count), deadline=date.fromisoformat(deadline))
            except ValueError:
                pass
    raise BundleError(f"gate {text[:80]!r}: free, email, price=9.95 or crowdfund=250000x9.95,YYYY-MM-DD")
