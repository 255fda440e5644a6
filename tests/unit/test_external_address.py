"""The external-address vote: distinct witnesses, a majority, never one peer alone."""

from __future__ import annotations

import pytest

from bitswarm.external_address import VOTE_TTL_S, ExternalAddressVote, Witness


def test_one_witness_alone_is_never_believed() -> None:
    vote = ExternalAddressVote()
    assert not vote.vote(Witness.PEER, "198.51.100.1", "8.8.4.4", 0.0)
    assert vote.address(4) is None


def test_two_distinct_witnesses_agreeing_decide_the_address() -> None:
    vote = ExternalAddressVote()
    vote.vote(Witness.ROUTER, "router", "8.8.4.4", 0.0)
    assert vote.vote(Witness.TRACKER, "tracker.example", "8.8.4.4", 1.0)
    assert vote.address(4) == "8.8.4.4"
    assert vote.address(6) is None


def test_one_voter_repeating_a_claim_is_one_voice_and_its_latest_claim_counts() -> None:
    vote = ExternalAddressVote()
    for step in range(10):
        vote.vote(Witness.PEER, "198.51.100.1", "192.0.2.99", float(step))
    assert vote.address(4) is None
    vote.vote(Witness.DHT, "198.51.100.2", "8.8.4.4", 10.0)
    vote.vote(Witness.PEER, "198.51.100.1", "8.8.4.4", 11.0)  # changed its mind
    assert vote.address(4) == "8.8.4.4"
    assert vote.voters(4) == 2


def test_the_majority_wins_and_a_tie_keeps_what_was_decided() -> None:
    vote = ExternalAddressVote()
    for voter in ("198.51.100.1", "198.51.100.2"):
        vote.vote(Witness.PEER, voter, "8.8.4.4", 0.0)
    for voter in ("198.51.100.3", "198.51.100.4"):
        vote.vote(Witness.PEER, voter, "9.9.9.9", 0.0)
    assert vote.address(4) == "8.8.4.4"  # two against two: no flapping
    vote.vote(Witness.PEER, "198.51.100.5", "9.9.9.9", 0.0)
    assert vote.address(4) == "9.9.9.9"


UNFIT = ["127.0.0.1", "::1", "0.0.0.0", "224.0.0.1", "169.254.1.1", "fe80::1", "nonsense"]  # noqa: S104


@pytest.mark.parametrize("claimed", UNFIT)
def test_claims_that_cannot_be_an_internet_address_are_ignored(claimed: str) -> None:
    vote = ExternalAddressVote()
    for voter in ("a", "b", "c"):
        assert not vote.vote(Witness.PEER, voter, claimed, 0.0)
    assert vote.address(4) is None
    assert vote.address(6) is None
    assert vote.voters(4) == vote.voters(6) == 0


def test_families_are_decided_apart() -> None:
    vote = ExternalAddressVote()
    for voter in ("a", "b"):
        vote.vote(Witness.DHT, voter, "2001:db8::5", 0.0)
    assert vote.address(6) == "2001:db8::5"
    assert vote.address(4) is None


def test_the_voters_are_capped_and_the_oldest_goes_first() -> None:
    vote = ExternalAddressVote(max_voters=3)
    vote.vote(Witness.PEER, "a", "8.8.4.4", 0.0)
    vote.vote(Witness.PEER, "b", "8.8.4.4", 0.0)
    assert vote.address(4) == "8.8.4.4"
    for voter in ("c", "d", "e"):
        vote.vote(Witness.PEER, voter, "9.9.9.9", 1.0)
    assert vote.voters(4) == 3
    assert vote.address(4) == "9.9.9.9"


def test_old_claims_expire() -> None:
    vote = ExternalAddressVote()
    vote.vote(Witness.PEER, "a", "8.8.4.4", 0.0)
    vote.vote(Witness.PEER, "b", "8.8.4.4", 0.0)
    assert vote.address(4) == "8.8.4.4"
    assert vote.vote(Witness.PEER, "c", "9.9.9.9", VOTE_TTL_S + 1.0)
    assert vote.address(4) is None
    assert vote.voters(4) == 1
