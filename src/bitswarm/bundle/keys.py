"""Keys of accounts: a password-derived wrapping key, a master key, and keys wrapped under
them with their purpose bound in. Sans-IO (randomness from ``secrets``, passed in for tests).

MEGA's scheme was broken twice (2022, 2023) because wrapped keys were encrypted without
authentication: a malicious server could alter or swap them and learn private keys from
how the client failed. Here every wrapped key is sealed with an AEAD whose associated data
names what the key is (its kind), which key it is (its id), whose it is (the owner) and
which generation of the key above wrapped it. The unwrapping side supplies those from its
own context, never from the blob, so a flipped bit, a key of another kind, another user's
key or a replayed key of an earlier generation fails to open and is never used.

Password: Argon2id (RFC 9106) with at least the second recommended parameter set (t=3,
p=4, 64 MiB) gives 32 bytes; HKDF splits them into the wrapping key and the login
verifier, so the verifier the site checks at login says nothing about the wrapping key.
A password change re-wraps the master key alone; rotating the master key (after a
compromise) re-wraps the keys under it; neither touches a bundle's ciphertext.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bitswarm import bencode
from bitswarm.bundle.format import KEY_BYTES, BundleError
from bitswarm.errors import DecodeError

VERSION = 1
SALT_BYTES = 16
NONCE_BYTES = 12
_LABEL = b"bitswarm-keys-v1 "
KIND_MASTER = "master"
KIND_BUNDLE = "bundle"
KIND_GATE_SECRET = "gate-secret"  # noqa: S105 - a kind's name, not a secret
KINDS = frozenset({KIND_MASTER, KIND_BUNDLE, KIND_GATE_SECRET})
MAX_FIELD_CHARS = 200


@dataclass(frozen=True, slots=True)
class Argon2Params:
    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4

    def check(self) -> None:
        """Never below RFC 9106's second recommended option (the one for limited memory)."""
        if self.time_cost < 3 or self.memory_kib < 64 * 1024 or self.parallelism < 1:
            raise BundleError("Argon2id parameters below t=3, m=64 MiB")


@dataclass(frozen=True, slots=True)
class PasswordKeys:
    wrapping_key: bytes  # never stored: it opens the master key
    login_verifier: bytes  # what the site compares at login (stored hashed)


def derive_password_keys(password: str, salt: bytes, params: Argon2Params = Argon2Params()) -> PasswordKeys:
    params.check()
    if len(salt) != SALT_BYTES:
        raise BundleError(f"a salt is {SALT_BYTES} bytes")
    root = hash_secret_raw(
        password.encode(), salt, time_cost=params.time_cost, memory_cost=params.memory_kib,
        parallelism=params.parallelism, hash_len=KEY_BYTES, type=Type.ID,
    )  # fmt: skip
    return PasswordKeys(_expand(root, b"wrap"), _expand(root, b"login"))


def _expand(root: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_LABEL + purpose).derive(root)


def verifier_digest(verifier: bytes) -> bytes:
    """What the site stores for login: a hash, so a copy of its database logs nobody in."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(_LABEL + b"verifier " + verifier)
    return digest.finalize()


def verifier_matches(verifier: bytes, stored_digest: bytes) -> bool:
    return hmac.compare_digest(verifier_digest(verifier), stored_digest)


@dataclass(frozen=True, slots=True)
class Binding:
    """What a wrapped key is, which, whose, and under which generation of the key above."""

    kind: str
    key_id: str
    owner: str
    generation: int

    def check(self) -> None:
        if self.kind not in KINDS:
            raise BundleError(f"unknown key kind {self.kind[:40]!r}")
        if not 0 < len(self.key_id) <= MAX_FIELD_CHARS or not 0 < len(self.owner) <= MAX_FIELD_CHARS:
            raise BundleError("a wrapped key needs an id and an owner")
        if self.generation < 1:
            raise BundleError("generations count from 1")

    def associated_data(self) -> bytes:
        self.check()
        return bencode.encode({
            b"generation": self.generation, b"id": self.key_id.encode(), b"kind": self.kind.encode(),
            b"owner": self.owner.encode(), b"version": VERSION,
        })  # fmt: skip


@dataclass(frozen=True, slots=True)
class WrappedKey:
    nonce: bytes
    sealed: bytes  # the key and its tag

    def encode(self) -> bytes:
        return bencode.encode({b"nonce": self.nonce, b"sealed": self.sealed, b"version": VERSION})

    @classmethod
    def decode(cls, data: bytes) -> WrappedKey:
        try:
            value: Any = bencode.decode(data)
        except DecodeError:
            raise BundleError("a wrapped key that is not bencode") from None
        if not isinstance(value, dict) or set(value) != {b"nonce", b"sealed", b"version"}:
            raise BundleError("a wrapped key of an unknown shape")
        nonce, sealed = value[b"nonce"], value[b"sealed"]
        if value[b"version"] != VERSION or not isinstance(nonce, bytes) or not isinstance(sealed, bytes):
            raise BundleError("a wrapped key of an unknown version")
        if len(nonce) != NONCE_BYTES or len(sealed) != KEY_BYTES + 16:
            raise BundleError("a wrapped key of the wrong size")
        return cls(nonce, sealed)


def wrap(
    key: bytes, wrapping_key: bytes, binding: Binding, *, nonce_source: Callable[[int], bytes] = secrets.token_bytes
) -> WrappedKey:
    """``key`` sealed under ``wrapping_key`` with ``binding`` as associated data."""
    if len(key) != KEY_BYTES or len(wrapping_key) != KEY_BYTES:
        raise BundleError(f"keys are {KEY_BYTES} bytes")
    nonce = nonce_source(NONCE_BYTES)
    return WrappedKey(nonce, AESGCM(wrapping_key).encrypt(nonce, key, binding.associated_data()))


def unwrap(wrapped: WrappedKey, wrapping_key: bytes, expected: Binding) -> bytes:
    """The key, if ``wrapped`` was sealed under ``wrapping_key`` for exactly ``expected``;
    BundleError otherwise (tampered, swapped, of another kind or owner, or replayed)."""
    try:
        return AESGCM(wrapping_key).decrypt(wrapped.nonce, wrapped.sealed, expected.associated_data())
    except InvalidTag:
        raise BundleError(f"the {expected.kind} key {expected.key_id!r} does not unwrap: refused") from None


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


@dataclass(frozen=True, slots=True)
class AccountKeys:
    """What a site stores for an account's keys: nothing that opens them without the password."""

    owner: str
    salt: bytes
    params: Argon2Params
    verifier_digest: bytes
    wrapped_master: WrappedKey
    password_generation: int  # bound into the wrapped master key: an old one is refused
    master_generation: int  # bound into every key wrapped under the master key


def _master_binding(account_owner: str, generation: int) -> Binding:
    return Binding(KIND_MASTER, "master", account_owner, generation)


def child_binding(account: AccountKeys, kind: str, key_id: str) -> Binding:
    """The binding of a key of ``kind`` and ``key_id`` wrapped under ``account``'s master key."""
    return Binding(kind, key_id, account.owner, account.master_generation)


def create_account(owner: str, password: str, params: Argon2Params = Argon2Params()) -> tuple[AccountKeys, bytes]:
    """A new account's stored keys and its master key (to wrap keys under, then forget)."""
    salt, master = new_salt(), new_key()
    derived = derive_password_keys(password, salt, params)
    wrapped = wrap(master, derived.wrapping_key, _master_binding(owner, 1))
    return AccountKeys(owner, salt, params, verifier_digest(derived.login_verifier), wrapped, 1, 1), master


def open_master(account: AccountKeys, password: str) -> bytes:
    """The master key; BundleError for a wrong password or a wrapped key that was tampered
    with or replayed from an earlier password."""
    derived = derive_password_keys(password, account.salt, account.params)
    if not verifier_matches(derived.login_verifier, account.verifier_digest):
        raise BundleError("wrong password")
    binding = _master_binding(account.owner, account.password_generation)
    return unwrap(account.wrapped_master, derived.wrapping_key, binding)


def change_password(account: AccountKeys, old_password: str, new_password: str) -> AccountKeys:
    """The same master key under a new password: one key re-wrapped, nothing re-encrypted."""
    master = open_master(account, old_password)
    salt = new_salt()
    derived = derive_password_keys(new_password, salt, account.params)
    generation = account.password_generation + 1
    wrapped = wrap(master, derived.wrapping_key, _master_binding(account.owner, generation))
    return AccountKeys(account.owner, salt, account.params, verifier_digest(derived.login_verifier), wrapped,
                       generation, account.master_generation)  # fmt: skip


def rotate_master(
    account: AccountKeys, password: str, children: list[tuple[str, str, WrappedKey]]
) -> tuple[AccountKeys, list[tuple[str, str, WrappedKey]]]:
    """A new master key after a compromise: each (kind, id, wrapped key) under the old one
    is opened and wrapped again under the new one, at the next master generation."""
    old_master = open_master(account, password)
    keys = [(kind, key_id, unwrap(wrapped, old_master, child_binding(account, kind, key_id)))
            for kind, key_id, wrapped in children]  # fmt: skip
    derived = derive_password_keys(password, account.salt, account.params)
    new_master = new_key()
    generation = account.password_generation + 1
    rotated = AccountKeys(
        account.owner, account.salt, account.params, account.verifier_digest,
        wrap(new_master, derived.wrapping_key, _master_binding(account.owner, generation)),
        generation, account.master_generation + 1,
    )  # fmt: skip
    return rotated, [
        (kind, key_id, wrap(key, new_master, child_binding(rotated, kind, key_id))) for kind, key_id, key in keys
    ]
