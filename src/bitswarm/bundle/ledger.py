"""Sales of gated bundles: each sale split into the platform's share and the artist's part,
in exact decimal arithmetic. Sans-IO.

Money is ``decimal.Decimal`` in the currency's minor unit precision (cents: two places),
never a float. The platform's share of a sale is rounded half-even to the cent and the
artist gets the rest, so for every sale ``platform + artist == gross`` exactly, and a
ledger's totals are the sums of its sales: they always balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from bitswarm.bundle.format import BundleError

CENT = Decimal("0.01")
# A price is at most this: a bound for hostile input, far above any real bundle.
MAX_AMOUNT = Decimal("1000000.00")


def money(value: str | Decimal) -> Decimal:
    """An amount of money from text like "9.95": positive, at most two decimal places."""
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise BundleError(f"{str(value)[:40]!r} is not an amount") from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT or amount != amount.quantize(CENT):
        raise BundleError(f"{str(value)[:40]!r}: an amount above 0, at most {MAX_AMOUNT}, in cents")
    return amount.quantize(CENT)


def share_rate(value: str | Decimal) -> Decimal:
    """The platform's share as a fraction from 0 to 1 ("0.10" for 10 %)."""
    try:
        rate = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise BundleError(f"{str(value)[:40]!r} is not a share") from None
    if not rate.is_finite() or not 0 <= rate <= 1:
        raise BundleError("the platform's share is from 0 to 1")
    return rate


@dataclass(frozen=True, slots=True)
class Sale:
    reference: str  # the voucher or the provider's payment id: a sale is recorded once
    gross: Decimal
    platform: Decimal
    artist: Decimal


def split(reference: str, gross: Decimal, rate: Decimal) -> Sale:
    platform = (gross * rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
    return Sale(reference, gross, platform, gross - platform)


@dataclass
class Ledger:
    """One bundle's sales; recording the same reference twice records it once."""

    rate: Decimal
    sales: dict[str, Sale] = field(default_factory=dict)

    def record(self, reference: str, gross: Decimal) -> tuple[Sale, bool]:
        """The sale for ``reference`` and whether it is new (a replayed payment is not)."""
        known = self.sales.get(reference)
        if known is not None:
            if known.gross != gross:
                raise BundleError(f"payment {reference[:60]!r} was recorded with another amount")
            return known, False
        sale = split(reference, gross, self.rate)
        self.sales[reference] = sale
        return sale, True

    @property
    def totals(self) -> tuple[Decimal, Decimal, Decimal]:
        """(gross, platform, artist) over every sale."""
        gross = sum((sale.gross for sale in self.sales.values()), Decimal(0))
        platform = sum((sale.platform for sale in self.sales.values()), Decimal(0))
        artist = sum((sale.artist for sale in self.sales.values()), Decimal(0))
        return gross, platform, artist
