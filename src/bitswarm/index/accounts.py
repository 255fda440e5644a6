"""Accounts of the site: operators (who moderate) and uploaders. Optional: browsing,
searching and downloading need none.

Passwords are hashed with Argon2id (argon2-cffi, its RFC 9106 defaults); a hash made
with weaker parameters is replaced at the next sign-in. An account holds a name, a role
and the hash: no e-mail address, no IP address. It also has a master key
(``bitswarm.bundle.keys``), wrapped under a key derived from the password, which wraps the
artist's own copies of their bundles' keys: a password change re-wraps the master key and
nothing else. An account made before master keys gets one at its next sign-in.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

import argon2
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine

from bitswarm.bundle import keys
from bitswarm.bundle.format import BundleError
from bitswarm.errors import UsageError
from bitswarm.index.schema import account_keys, accounts
from bitswarm.index.transaction import writing

ROLES = ("operator", "uploader")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_hasher = argon2.PasswordHasher()
# Verifying an unknown name costs as long as a known one: no timing oracle for names.
_DUMMY_HASH = _hasher.hash("not a password of anyone's")


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    role: str


class AccountStore:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._clock = clock

    async def create(self, name: str, password: str, role: str) -> Account:
        """A new account; raises ``UsageError`` for a bad name, role or password, or a taken name."""
        if _NAME.fullmatch(name) is None:
            raise UsageError("account names are 1-64 letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise UsageError(f"role {role!r}: one of {', '.join(ROLES)}")
        _check_password(password)
        values = {"name": name, "role": role, "password_hash": _hasher.hash(password), "created_at": int(self._clock())}
        try:
            async with writing(self._engine) as connection:
                result = await connection.execute(accounts.insert().values(**values).returning(accounts.c.id))
                account_id = result.scalar_one()
        except exc.IntegrityError:
            raise UsageError(f"an account named {name!r} exists") from None
        await self._make_keys(account_id, name, password)
        return Account(account_id, name, role)

    async def _make_keys(self, account_id: int, name: str, password: str) -> None:
        made, _ = await asyncio.to_thread(keys.create_account, name, password)
        async with writing(self._engine) as connection:
            await connection.execute(
                account_keys.insert().values(account_id=account_id, sealed_keys=keys.encode_account(made))
            )

    async def keys_of(self, account_id: int) -> keys.AccountKeys | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(
                sa.select(account_keys.c.sealed_keys).where(account_keys.c.account_id == account_id)
            )).first()  # fmt: skip
        return keys.decode_account(row.sealed_keys) if row is not None else None

    async def open_master(self, account: Account, password: str) -> bytes:
        """The account's master key; BundleError for a wrong password or tampered keys."""
        stored = await self.keys_of(account.id)
        if stored is None or stored.owner != account.name:
            raise BundleError("this account has no keys")
        return await asyncio.to_thread(keys.open_master, stored, password)

    async def change_password(self, name: str, old_password: str, new_password: str) -> None:
        """A new password: its hash, and the same master key wrapped again (nothing else is
        re-encrypted). UsageError for a wrong old password or a bad new one."""
        _check_password(new_password)
        account = await self.verify(name, old_password)
        if account is None:
            raise UsageError("wrong name or password")
        stored = await self.keys_of(account.id)
        assert stored is not None  # verify made them
        changed = await asyncio.to_thread(keys.change_password, stored, old_password, new_password)
        async with writing(self._engine) as connection:
            await connection.execute(
                accounts.update().where(accounts.c.id == account.id).values(password_hash=_hasher.hash(new_password))
            )
            await connection.execute(
                account_keys.update().where(account_keys.c.account_id == account.id)
                .values(sealed_keys=keys.encode_account(changed))
            )  # fmt: skip

    async def verify(self, name: str, password: str) -> Account | None:
        """The account when ``password`` is its password, else None."""
        if len(password) > MAX_PASSWORD_CHARS or len(name) > 64:
            return None
        async with self._engine.connect() as connection:
            row = (await connection.execute(sa.select(accounts).where(accounts.c.name == name))).first()
        try:
            _hasher.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(row.password_hash):
            await self._set_hash(row.id, _hasher.hash(password))
        if await self.keys_of(row.id) is None:
            await self._make_keys(row.id, row.name, password)
        return Account(row.id, row.name, row.role)

    async def rotate_master_key(self, name: str, password: str) -> int:
        """After a suspected compromise: a new master key, and every key wrapped under the old
        one (the owner copies of the account's bundle keys) wrapped again under the new one,
        in one transaction. The number of keys re-wrapped."""
        from bitswarm.index.schema import bundles  # noqa: PLC0415 - the bundles' table is theirs

        account = await self.verify(name, password)
        if account is None:
            raise UsageError("wrong name or password")
        stored = await self.keys_of(account.id)
        assert stored is not None  # verify made them
        async with self._engine.connect() as connection:
            rows = (await connection.execute(
                sa.select(bundles.c.entry_id, bundles.c.owner_wrapped_key)
                .where(bundles.c.owner_id == account.id, bundles.c.owner_wrapped_key.is_not(None))
            )).all()  # fmt: skip
        children = [(keys.KIND_BUNDLE, f"entry-{row.entry_id}", keys.WrappedKey.decode(row.owner_wrapped_key))
                    for row in rows]  # fmt: skip
        rotated, rewrapped = await asyncio.to_thread(keys.rotate_master, stored, password, children)
        async with writing(self._engine) as connection:
            await connection.execute(
                account_keys.update().where(account_keys.c.account_id == account.id)
                .values(sealed_keys=keys.encode_account(rotated))
            )  # fmt: skip
            for row, (_, _, wrapped) in zip(rows, rewrapped, strict=True):
                await connection.execute(
                    bundles.update()
                    .where(bundles.c.entry_id == row.entry_id)
                    .values(owner_wrapped_key=wrapped.encode())
                )
        return len(rewrapped)

    async def set_password(self, name: str, password: str) -> None:
        """An operator's reset, without the old password: the account gets a new master key,
        so its owner copies of bundle keys no longer open (the site's gate copies do)."""
        _check_password(password)
        async with writing(self._engine) as connection:
            result = await connection.execute(
                accounts.update().where(accounts.c.name == name).values(password_hash=_hasher.hash(password))
            )
            if result.rowcount != 1:
                raise UsageError(f"no account named {name!r}")
            account_id = (
                await connection.execute(sa.select(accounts.c.id).where(accounts.c.name == name))
            ).scalar_one()
            await connection.execute(account_keys.delete().where(account_keys.c.account_id == account_id))
        await self._make_keys(account_id, name, password)

    async def role_of(self, account_id: int) -> str | None:
        """The account's role now (a signed cookie may be older than a change), or None."""
        async with self._engine.connect() as connection:
            row = (await connection.execute(sa.select(accounts.c.role).where(accounts.c.id == account_id))).first()
        return row.role if row is not None else None

    async def _set_hash(self, account_id: int, password_hash: str) -> None:
        async with writing(self._engine) as connection:
            update = accounts.update().where(accounts.c.id == account_id)
            await connection.execute(update.values(password_hash=password_hash))


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise UsageError(f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
