"""Encrypted bundles on the site: their gates, their wrapped keys, sales and grants.

The site holds a bundle's content key only wrapped, under its key-encryption key (a random
32-byte key in a file of the site's key folder, shared by every process of the site), with
the key's kind, its entry and its owner bound in (``bitswarm.bundle.keys``): a row changed
or copied to another entry does not unwrap. The offline payment provider's Ed25519 signing
key lives in the same folder. A gate that opens creates a grant: a page reached by a random
token (only its hash is stored) that shows the share link, and a tracker passkey that names
the grant, not the person.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bitswarm.bundle import email_gate, keys, ledger
from bitswarm.bundle.crowdfund import CampaignState, next_state
from bitswarm.bundle.format import KEY_BYTES, BundleError
from bitswarm.errors import UsageError
from bitswarm.index.schema import bundle_emails, bundle_grants, bundle_pledges, bundle_sales, bundles
from bitswarm.index.transaction import writing

GATES = ("free", "email", "price", "crowdfund")
# Programs (``bitswarm bundle publish``) send this header with their credentials.
API_HEADER = "X-Bitswarm-Api"
KEK_FILE = "bundle-kek"
VOUCHER_KEY_FILE = "voucher-ed25519"
PASSKEY_BYTES = 16
# One confirmation mail per address and bundle in this long: no mail bombing through us.
MAIL_INTERVAL_S = 600
# Pledges released per transaction: a restart between two loses nothing (the rest are
# still "pledged", and the release goes on at the next start).
RELEASE_BATCH = 500
DEFAULT_SHARE = "0.10"


@dataclass(frozen=True, slots=True)
class SiteKeys:
    """The key-encryption key and the voucher signing key of a site."""

    kek: bytes
    voucher_key: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, folder: Path) -> SiteKeys:
        """The keys in ``folder``, made (mode 0600) on first use."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        kek = _secret_file(folder / KEK_FILE)
        seed = _secret_file(folder / VOUCHER_KEY_FILE)
        return cls(kek, Ed25519PrivateKey.from_private_bytes(seed))


def _secret_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) != KEY_BYTES:
            raise UsageError(f"{path}: not a {KEY_BYTES}-byte key") from None
        return data
    data = secrets.token_bytes(KEY_BYTES)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return data


@dataclass(frozen=True, slots=True)
class Bundle:
    entry_id: int
    owner: str
    gate: str
    price: Decimal | None
    goal_count: int | None
    deadline: int | None
    share_rate: Decimal


@dataclass(frozen=True, slots=True)
class Campaign:
    state: CampaignState
    backers: int  # pledges not refunded


@dataclass(frozen=True, slots=True)
class Pledge:
    entry_id: int
    state: str  # pledged, released, refund
    passkey: str | None  # the grant's, once released


@dataclass(frozen=True, slots=True)
class Grant:
    entry_id: int
    kind: str
    passkey: str


def _binding(entry_id: int, owner: str) -> keys.Binding:
    return keys.Binding(keys.KIND_BUNDLE, f"entry-{entry_id}", owner, 1)


class BundleStore:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._clock = clock

    async def publish(
        self,
        entry_id: int,
        owner_id: int,
        owner_name: str,
        content_key: bytes,
        kek: bytes,
        *,
        gate: str,
        price: Decimal | None = None,
        goal_count: int | None = None,
        deadline: int | None = None,
        share_rate: Decimal = Decimal(DEFAULT_SHARE),
    ) -> None:
        if gate not in GATES:
            raise UsageError(f"gate {gate!r}: one of {', '.join(GATES)}")
        if (gate in ("price", "crowdfund")) != (price is not None):
            raise UsageError("a price gate and a crowdfunding gate have a price; the others none")
        if (gate == "crowdfund") != (goal_count is not None and deadline is not None):
            raise UsageError("a crowdfunding gate has a goal and a deadline")
        wrapped = keys.wrap(content_key, kek, _binding(entry_id, owner_name))
        values = {
            "entry_id": entry_id, "owner_id": owner_id, "gate": gate, "price": str(price) if price else None,
            "goal_count": goal_count, "deadline": deadline, "campaign_state": "open" if gate == "crowdfund" else None,
            "share_rate": str(share_rate), "wrapped_key": wrapped.encode(), "created_at": int(self._clock()),
        }  # fmt: skip
        try:
            async with writing(self._engine) as connection:
                await connection.execute(bundles.insert().values(**values))
        except exc.IntegrityError:
            raise UsageError(f"entry {entry_id} is a bundle already") from None

    async def get(self, entry_id: int) -> Bundle | None:
        from bitswarm.index.schema import accounts  # noqa: PLC0415

        query = sa.select(bundles, accounts.c.name).join(accounts, accounts.c.id == bundles.c.owner_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query.where(bundles.c.entry_id == entry_id))).first()
        if row is None:
            return None
        return Bundle(
            row.entry_id, row.name, row.gate, Decimal(row.price) if row.price else None, row.goal_count,
            row.deadline, Decimal(row.share_rate),
        )  # fmt: skip

    async def content_key(self, bundle: Bundle, kek: bytes) -> bytes:
        """The bundle's key, unwrapped; BundleError when its row was tampered with."""
        async with self._engine.connect() as connection:
            blob = (
                await connection.execute(sa.select(bundles.c.wrapped_key).where(bundles.c.entry_id == bundle.entry_id))
            ).scalar_one()
        return keys.unwrap(keys.WrappedKey.decode(blob), kek, _binding(bundle.entry_id, bundle.owner))

    async def record_sale(self, bundle: Bundle, reference: str, gross: Decimal) -> tuple[ledger.Sale, str | None]:
        """The sale under ``reference`` (a voucher serial, a payment id) and the token of the
        grant it makes; the token is None when that sale was recorded before (a replay)."""
        if bundle.price is None or gross != bundle.price:
            raise BundleError(f"this bundle costs {bundle.price}, not {gross}")
        sale = ledger.split(reference, gross, bundle.share_rate)
        token, digest = email_gate.new_token()
        now = int(self._clock())
        try:
            async with writing(self._engine) as connection:
                await connection.execute(bundle_sales.insert().values(
                    reference=reference, entry_id=bundle.entry_id, gross=str(sale.gross),
                    platform=str(sale.platform), artist=str(sale.artist), created_at=now,
                ))  # fmt: skip
                await connection.execute(bundle_grants.insert().values(
                    entry_id=bundle.entry_id, kind="sale", reference=f"sale:{reference}", token_digest=digest,
                    passkey=secrets.token_hex(PASSKEY_BYTES), created_at=now,
                ))  # fmt: skip
        except exc.IntegrityError:
            return sale, None
        return sale, token

    async def grant_of(self, token: str) -> Grant | None:
        if len(token) > 100:
            return None
        query = sa.select(bundle_grants).where(bundle_grants.c.token_digest == email_gate.token_digest(token))
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return Grant(row.entry_id, row.kind, row.passkey) if row is not None else None

    async def sales_totals(self, entry_id: int) -> tuple[Decimal, Decimal, Decimal, int]:
        """(gross, platform, artist, count) of a bundle's sales."""
        async with self._engine.connect() as connection:
            rows = (await connection.execute(sa.select(bundle_sales).where(bundle_sales.c.entry_id == entry_id))).all()
        gross = sum((Decimal(row.gross) for row in rows), Decimal(0))
        platform = sum((Decimal(row.platform) for row in rows), Decimal(0))
        artist = sum((Decimal(row.artist) for row in rows), Decimal(0))
        return gross, platform, artist, len(rows)

    async def _grant(self, connection: AsyncConnection, entry_id: int, kind: str, reference: str) -> str:
        """A grant for ``reference`` (made, or given a new token when it exists): its token."""
        token, digest = email_gate.new_token()
        existing = (
            await connection.execute(sa.select(bundle_grants.c.id).where(bundle_grants.c.reference == reference))
        ).first()
        if existing is not None:
            await connection.execute(
                bundle_grants.update().where(bundle_grants.c.id == existing.id).values(token_digest=digest)
            )
        else:
            await connection.execute(bundle_grants.insert().values(
                entry_id=entry_id, kind=kind, reference=reference, token_digest=digest,
                passkey=secrets.token_hex(PASSKEY_BYTES), created_at=int(self._clock()),
            ))  # fmt: skip
        return token

    async def ask_email(self, bundle: Bundle, address_digest: bytes, kept_address: str | None) -> str:
        """A confirmation token for an address (kept in clear only with consent); UsageError
        when that address asked for this bundle within ``MAIL_INTERVAL_S``."""
        now = int(self._clock())
        token, digest = email_gate.new_token()
        recent = sa.select(bundle_emails.c.id).where(
            bundle_emails.c.entry_id == bundle.entry_id, bundle_emails.c.address_digest == address_digest,
            bundle_emails.c.expires_at > now + int(email_gate.TOKEN_LIFETIME_S) - MAIL_INTERVAL_S,
        )  # fmt: skip
        async with writing(self._engine) as connection:
            if (await connection.execute(recent)).first() is not None:
                raise UsageError("a link was mailed to that address a few minutes ago: look for it")
            await connection.execute(bundle_emails.insert().values(
                entry_id=bundle.entry_id, address_digest=address_digest, address=kept_address, token_digest=digest,
                expires_at=now + int(email_gate.TOKEN_LIFETIME_S),
            ))  # fmt: skip
        return token

    async def confirm_email(self, token: str) -> str | None:
        """The grant token for a confirmation token that is known and not expired, else None."""
        if len(token) > 100:
            return None
        now = int(self._clock())
        query = sa.select(bundle_emails).where(bundle_emails.c.token_digest == email_gate.token_digest(token))
        async with writing(self._engine) as connection:
            row = (await connection.execute(query)).first()
            if row is None or row.expires_at <= now:
                return None
            if row.confirmed_at is None:
                await connection.execute(
                    bundle_emails.update().where(bundle_emails.c.id == row.id).values(confirmed_at=now)
                )
            reference = f"email:{row.entry_id}:{row.address_digest.hex()}"
            return await self._grant(connection, row.entry_id, "email", reference)

    async def fans(self, entry_id: int) -> list[str]:
        """Confirmed addresses whose owners agreed that the artist may have them."""
        query = (
            sa.select(bundle_emails.c.address)
            .where(bundle_emails.c.entry_id == entry_id, bundle_emails.c.address.is_not(None),
                   bundle_emails.c.confirmed_at.is_not(None))
            .distinct()
            .order_by(bundle_emails.c.address)
        )  # fmt: skip
        async with self._engine.connect() as connection:
            return [row.address for row in (await connection.execute(query)).all()]

    # -- crowdfunding ----------------------------------------------------------------

    async def campaign(self, bundle: Bundle) -> Campaign:
        """The campaign as it is now: settled, and released if funded."""
        if await self.settle(bundle) is CampaignState.FUNDED:
            await self.release(bundle)
        async with self._engine.connect() as connection:
            state = (await connection.execute(
                sa.select(bundles.c.campaign_state).where(bundles.c.entry_id == bundle.entry_id)
            )).scalar_one()  # fmt: skip
            backers = (await connection.execute(
                sa.select(sa.func.count()).select_from(bundle_pledges)
                .where(bundle_pledges.c.entry_id == bundle.entry_id, bundle_pledges.c.state != "refund")
            )).scalar_one()  # fmt: skip
        return Campaign(CampaignState(state), backers)

    async def pledge(self, bundle: Bundle, reference: str, amount: Decimal) -> str | None:
        """Record a backer's paid pledge; the token of their pledge page, None for a pledge
        recorded before. BundleError once the campaign is not open, or for another amount."""
        if bundle.gate != "crowdfund" or bundle.price is None:
            raise BundleError("this bundle is not crowdfunded")
        state = await self.settle(bundle)
        if state is not CampaignState.OPEN:
            raise BundleError(f"the campaign is {state.value}: no more pledges")
        if amount != bundle.price:
            raise BundleError(f"a pledge is {bundle.price}, not {amount}")
        token, digest = email_gate.new_token()
        try:
            async with writing(self._engine) as connection:
                await connection.execute(bundle_pledges.insert().values(
                    entry_id=bundle.entry_id, reference=reference, amount=str(amount), token_digest=digest,
                    state="pledged", created_at=int(self._clock()),
                ))  # fmt: skip
        except exc.IntegrityError:
            return None
        if await self.settle(bundle) is CampaignState.FUNDED:
            await self.release(bundle)  # every backer at once, this one included
        return token

    async def settle(self, bundle: Bundle) -> CampaignState:
        """Funded once the pledges reach the goal, failed once the deadline passed first
        (every pledge then to be refunded)."""
        if bundle.gate != "crowdfund" or bundle.goal_count is None or bundle.deadline is None:
            return CampaignState.OPEN
        async with writing(self._engine) as connection:
            current = CampaignState((await connection.execute(
                sa.select(bundles.c.campaign_state).where(bundles.c.entry_id == bundle.entry_id)
            )).scalar_one())  # fmt: skip
            pledged = (await connection.execute(
                sa.select(sa.func.count()).select_from(bundle_pledges)
                .where(bundle_pledges.c.entry_id == bundle.entry_id)
            )).scalar_one()  # fmt: skip
            state = next_state(current, pledged, bundle.goal_count, bundle.deadline, self._clock())
            if state is not current:
                await connection.execute(
                    bundles.update().where(bundles.c.entry_id == bundle.entry_id).values(campaign_state=state.value)
                )
                if state is CampaignState.FAILED:
                    await connection.execute(
                        bundle_pledges.update()
                        .where(bundle_pledges.c.entry_id == bundle.entry_id, bundle_pledges.c.state == "pledged")
                        .values(state="refund")
                    )  # fmt: skip
        return state

    async def release(self, bundle: Bundle, *, batch: int = RELEASE_BATCH, max_batches: int | None = None) -> int:
        """Give the key to every backer still waiting, ``batch`` pledges a transaction (each
        pledge's grant, its sale and its new state together); the number released."""
        assert bundle.price is not None
        released = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            async with writing(self._engine) as connection:
                rows = (await connection.execute(
                    sa.select(bundle_pledges.c.id, bundle_pledges.c.reference)
                    .where(bundle_pledges.c.entry_id == bundle.entry_id, bundle_pledges.c.state == "pledged")
                    .order_by(bundle_pledges.c.id).limit(batch)
                )).all()  # fmt: skip
                for row in rows:
                    await self._grant(connection, bundle.entry_id, "pledge", f"pledge:{row.reference}")
                    sale = ledger.split(row.reference, bundle.price, bundle.share_rate)
                    await connection.execute(bundle_sales.insert().values(
                        reference=row.reference, entry_id=bundle.entry_id, gross=str(sale.gross),
                        platform=str(sale.platform), artist=str(sale.artist), created_at=int(self._clock()),
                    ))  # fmt: skip
                    await connection.execute(
                        bundle_pledges.update().where(bundle_pledges.c.id == row.id).values(state="released")
                    )
            released += len(rows)
            batches += 1
            if len(rows) < batch:
                break
        return released

    async def resume_releases(self) -> int:
        """Finish releases a stop interrupted, and settle campaigns whose deadline passed."""
        async with self._engine.connect() as connection:
            open_or_funded = (await connection.execute(
                sa.select(bundles.c.entry_id).where(bundles.c.campaign_state.in_(("open", "funded")))
            )).scalars().all()  # fmt: skip
        released = 0
        for entry_id in open_or_funded:
            bundle = await self.get(entry_id)
            if bundle is not None and await self.settle(bundle) is CampaignState.FUNDED:
                released += await self.release(bundle)
        return released

    async def pledge_of(self, token: str) -> Pledge | None:
        if len(token) > 100:
            return None
        query = sa.select(bundle_pledges).where(bundle_pledges.c.token_digest == email_gate.token_digest(token))
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
            if row is None:
                return None
            passkey = (await connection.execute(
                sa.select(bundle_grants.c.passkey).where(bundle_grants.c.reference == f"pledge:{row.reference}")
            )).scalar_one_or_none()  # fmt: skip
        return Pledge(row.entry_id, row.state, passkey)
