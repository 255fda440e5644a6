"""Wrapped keys refuse tampering in the style of the attacks on MEGA (2022, 2023)."""

from __future__ import annotations

import dataclasses

import pytest

from bitswarm.bundle import keys
from bitswarm.bundle.format import BundleError

# The real parameters (t=3, 64 MiB, p=4): a derivation takes a fraction of a second.
ALICE, BOB = "alice", "bob"


@pytest.fixture(scope="module")
def alice() -> tuple[keys.AccountKeys, bytes]:
    return keys.create_account(ALICE, "correct horse battery staple")


def test_the_password_opens_the_master_key_and_a_wrong_one_does_not(alice: tuple[keys.AccountKeys, bytes]) -> None:
    account, master = alice
    assert keys.open_master(account, "correct horse battery staple") == master
    with pytest.raises(BundleError, match="wrong password"):
        keys.open_master(account, "Correct horse battery staple")


def test_the_verifier_and_the_wrapping_key_are_unrelated_and_parameters_have_a_floor() -> None:
    derived = keys.derive_password_keys("pw", bytes(16))
    assert derived.wrapping_key != derived.login_verifier
    assert keys.derive_password_keys("pw", bytes(16)) == derived
    assert keys.derive_password_keys("pw", bytes([1]) * 16) != derived
    for weak in (keys.Argon2Params(time_cost=2), keys.Argon2Params(memory_kib=32 * 1024)):
        with pytest.raises(BundleError, match="below"):
            keys.derive_password_keys("pw", bytes(16), weak)


def test_every_bit_flip_of_a_wrapped_key_is_refused(alice: tuple[keys.AccountKeys, bytes]) -> None:
    account, master = alice
    bundle_key = keys.new_key()
    binding = keys.child_binding(account, keys.KIND_BUNDLE, "bundle-1")
    wrapped = keys.wrap(bundle_key, master, binding)
    assert keys.unwrap(keys.WrappedKey.decode(wrapped.encode()), master, binding) == bundle_key
    blob = wrapped.nonce + wrapped.sealed
    for bit in range(len(blob) * 8):
        flipped = bytearray(blob)
        flipped[bit // 8] ^= 1 << (bit % 8)
        tampered = keys.WrappedKey(bytes(flipped[:12]), bytes(flipped[12:]))
        with pytest.raises(BundleError, match="does not unwrap"):
            keys.unwrap(tampered, master, binding)


def test_keys_swapped_between_users_kinds_and_ids_are_refused(alice: tuple[keys.AccountKeys, bytes]) -> None:
    account, master = alice
    binding = keys.child_binding(account, keys.KIND_BUNDLE, "bundle-1")
    wrapped = keys.wrap(keys.new_key(), master, binding)
    for other in (
        dataclasses.replace(binding, owner=BOB),
        dataclasses.replace(binding, kind=keys.KIND_GATE_SECRET),
        dataclasses.replace(binding, key_id="bundle-2"),
        dataclasses.replace(binding, generation=2),
    ):
        with pytest.raises(BundleError, match="does not unwrap"):
            keys.unwrap(wrapped, master, other)
    # Alice's master key presented as Bob's: his binding does not match.
    bob_view = dataclasses.replace(account, owner=BOB)
    with pytest.raises(BundleError):
        keys.open_master(bob_view, "correct horse battery staple")


def test_a_password_change_rewraps_the_master_key_only_and_an_old_wrapped_key_is_refused(
    alice: tuple[keys.AccountKeys, bytes],
) -> None:
    account, master = alice
    binding = keys.child_binding(account, keys.KIND_BUNDLE, "bundle-1")
    bundle_key = keys.new_key()
    wrapped_bundle = keys.wrap(bundle_key, master, binding)
    changed = keys.change_password(account, "correct horse battery staple", "new password, long enough")
    assert keys.open_master(changed, "new password, long enough") == master
    assert keys.unwrap(wrapped_bundle, master, keys.child_binding(changed, keys.KIND_BUNDLE, "bundle-1")) == bundle_key
    with pytest.raises(BundleError, match="wrong password"):
        keys.open_master(changed, "correct horse battery staple")
    # A server that puts back the old wrapped master key (and the old salt and verifier, so
    # the old password passes) is caught by the generation the account is at now.
    replayed = dataclasses.replace(
        changed, salt=account.salt, verifier_digest=account.verifier_digest, wrapped_master=account.wrapped_master
    )
    with pytest.raises(BundleError, match="does not unwrap"):
        keys.open_master(replayed, "correct horse battery staple")


def test_rotating_the_master_key_rewraps_the_keys_under_it(alice: tuple[keys.AccountKeys, bytes]) -> None:
    account, master = alice
    bundle_key, gate_secret = keys.new_key(), keys.new_key()
    children = [
        (keys.KIND_BUNDLE, "b1", keys.wrap(bundle_key, master, keys.child_binding(account, keys.KIND_BUNDLE, "b1"))),
        (keys.KIND_GATE_SECRET, "g1",
         keys.wrap(gate_secret, master, keys.child_binding(account, keys.KIND_GATE_SECRET, "g1"))),
    ]  # fmt: skip
    rotated, rewrapped = keys.rotate_master(account, "correct horse battery staple", children)
    new_master = keys.open_master(rotated, "correct horse battery staple")
    assert new_master != master
    opened = [keys.unwrap(wrapped, new_master, keys.child_binding(rotated, kind, key_id))
              for kind, key_id, wrapped in rewrapped]  # fmt: skip
    assert opened == [bundle_key, gate_secret]
    # A key wrapped under the old master key, replayed after the rotation, is refused.
    with pytest.raises(BundleError):
        keys.unwrap(children[0][2], new_master, keys.child_binding(rotated, keys.KIND_BUNDLE, "b1"))


@pytest.mark.parametrize(
    "blob", [b"", b"x", b"d5:nonce0:6:sealed0:7:versioni1ee", b"d5:nonce12:aaaaaaaaaaaa6:sealed1:x7:versioni1ee"]
)
def test_malformed_wrapped_keys_are_refused(blob: bytes) -> None:
    with pytest.raises(BundleError):
        keys.WrappedKey.decode(blob)
