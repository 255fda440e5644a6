"""Crowdfunding gates: a goal (a number of backers at a price) and a deadline. Sans-IO.

Backers pledge while the campaign is open. When the pledges reach the goal the campaign is
funded and the key goes to every backer at once; when the deadline passes first, it has
failed: every pledge is to be refunded and no key is released. The release is a job over
the pledges that a restart may interrupt: each pledge records that its key went out, and
``to_release`` names the ones still waiting, so running the job again finishes it without
sending anything twice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal

from bitswarm.bundle.format import BundleError

MAX_GOAL = 10**9


class CampaignState(enum.Enum):
    OPEN = "open"
    FUNDED = "funded"
    FAILED = "failed"


class PledgeState(enum.Enum):
    PLEDGED = "pledged"
    RELEASED = "released"  # the backer has the key
    REFUND = "refund"  # to be paid back: the campaign failed


def next_state(state: CampaignState, pledged: int, goal_count: int, deadline: float, now: float) -> CampaignState:
    """Where a campaign with ``pledged`` pledges goes: funded once the goal is reached, failed
    once the deadline passes first; funded and failed are final."""
    if state is not CampaignState.OPEN:
        return state
    if pledged >= goal_count:
        return CampaignState.FUNDED
    return CampaignState.FAILED if now >= deadline else CampaignState.OPEN


@dataclass
class Campaign:
    goal_count: int
    price: Decimal
    deadline: float  # epoch seconds
    state: CampaignState = CampaignState.OPEN
    pledges: dict[str, PledgeState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.goal_count <= MAX_GOAL:
            raise BundleError(f"a goal is 1 to {MAX_GOAL} backers")

    @property
    def raised(self) -> Decimal:
        return self.price * sum(1 for state in self.pledges.values() if state is not PledgeState.REFUND)

    @property
    def goal(self) -> Decimal:
        return self.price * self.goal_count

    def pledge(self, pledge_id: str, amount: Decimal, now: float) -> bool:
        """Record a backer's pledge (paid ``amount``); whether it is new. Refused once the
        campaign is not open or its deadline has passed, or for another amount."""
        self.settle(now)
        if pledge_id in self.pledges:
            return False
        if self.state is not CampaignState.OPEN:
            raise BundleError(f"the campaign is {self.state.value}: no more pledges")
        if amount != self.price:
            raise BundleError(f"a pledge is {self.price}, not {amount}")
        self.pledges[pledge_id] = PledgeState.PLEDGED
        self.settle(now)
        return True

    def settle(self, now: float) -> CampaignState:
        """Move to funded (goal reached) or failed (deadline passed first)."""
        state = next_state(self.state, len(self.pledges), self.goal_count, self.deadline, now)
        if state is CampaignState.FAILED and self.state is CampaignState.OPEN:
            for pledge_id in self.pledges:
                self.pledges[pledge_id] = PledgeState.REFUND
        self.state = state
        return state

    def to_release(self) -> list[str]:
        """Pledges whose backers are still to get the key (none unless funded)."""
        if self.state is not CampaignState.FUNDED:
            return []
        return [pledge_id for pledge_id, state in self.pledges.items() if state is PledgeState.PLEDGED]

    def released(self, pledge_id: str) -> None:
        if self.state is not CampaignState.FUNDED or pledge_id not in self.pledges:
            raise BundleError("no key is released for that pledge")
        self.pledges[pledge_id] = PledgeState.RELEASED
