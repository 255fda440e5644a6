"""Bundle pages and their gates on the index site, and the publishing API.

- ``POST /api/bundles`` (``bitswarm bundle publish``): an account's bundle torrent, its key
  and its gate; a program's request (the ``X-Bitswarm-Api`` header, HTTP Basic credentials),
  not a form. The key must open the torrent's manifest; the site keeps it wrapped.
- ``/b/ID``: the bundle's title, description, size and terms, without the key; a free
  bundle's share link (the key in its fragment); a priced one's voucher form.
- ``POST /b/ID/redeem``: a voucher of the offline provider, signed by the site, buys the
  key once; the sale is recorded and split exactly; the buyer is sent to their grant page.
- ``/b/keys/TOKEN``: a grant: the share link with a tracker passkey of that grant's own.
- ``POST /b/ID/email``: the e-mail gate mails a confirmation link (``/b/confirm/TOKEN``)
  that leads to a grant; the address is kept as a keyed hash, in clear only if its owner
  agreed that the artist may have it (``/b/ID/fans.csv``, for the artist and operators).
- ``POST /b/ID/pledge``: a voucher pledged to a crowdfunded bundle; the backer's page
  ``/b/pledges/TOKEN`` shows the campaign, then the link once the goal is met (every backer
  at once), or that the pledge is to be refunded when the deadline passed first.

Pages that show a key load no third-party script (the site's CSP allows its own scripts
only), are not cached, and send no referrer to other sites.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import quote

from aiohttp import web

from bitswarm.bundle import email_gate, gates, links, vouchers
from bitswarm.bundle import files as bundle_files
from bitswarm.bundle.format import BundleError
from bitswarm.errors import BitswarmError, DuplicateEntry, MetainfoError, UsageError
from bitswarm.index.accounts import Account
from bitswarm.index.bundles import API_HEADER, Bundle, BundleStore, SiteKeys
from bitswarm.index.mailer import send_mail
from bitswarm.index.model import Entry
from bitswarm.index.site import _announce_url, _site, _visible_entry, page
from bitswarm.metainfo import Torrent

log = logging.getLogger(__name__)

# Not cached anywhere. (Their referrer policy is the site's "same-origin": no other site
# sees their address; "no-referrer" would break the site's own forms, see web.security.)
KEY_PAGE_HEADERS = {"Cache-Control": "no-store"}
MAX_VOUCHER_CHARS = 400


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.post("/api/bundles", publish),
        web.get(r"/b/{entry_id:\d{1,12}}", bundle_page),
        web.post(r"/b/{entry_id:\d{1,12}}/redeem", redeem),
        web.get(r"/b/keys/{token:[A-Za-z0-9_-]{20,100}}", grant_page),
        web.post(r"/b/{entry_id:\d{1,12}}/email", ask_email),
        web.get(r"/b/confirm/{token:[A-Za-z0-9_-]{20,100}}", confirm_email),
        web.get(r"/b/{entry_id:\d{1,12}}/fans.csv", fans_csv),
        web.post(r"/b/{entry_id:\d{1,12}}/pledge", pledge),
        web.get(r"/b/pledges/{token:[A-Za-z0-9_-]{20,100}}", pledge_page),
    ])  # fmt: skip


def _keys(request: web.Request) -> SiteKeys:
    keys = _site(request).bundle_keys
    if keys is None:
        raise web.HTTPServiceUnavailable(text="503: this site takes no bundles (no bundle_keys_dir is set)\n")
    return keys


def _store(request: web.Request) -> BundleStore:
    return _site(request).db.bundles


def _json(status: int, **fields: object) -> web.Response:
    return web.json_response(fields, status=status)


async def publish(request: web.Request) -> web.Response:
    site = _site(request)
    keys = _keys(request)
    if API_HEADER not in request.headers:
        return _json(400, error=f"send the {API_HEADER} header: this is an API for programs")
    account = await _basic_account(request)
    if account is None:
        raise web.HTTPUnauthorized(
            text='{"error": "an account name and password (HTTP Basic) are needed"}\n',
            headers={"WWW-Authenticate": 'Basic realm="bitswarm index"'}, content_type="application/json",
        )  # fmt: skip
    form = await request.post()
    upload = form.get("torrent")
    fields = {name: form.get(name) for name in ("key", "gate", "title", "description", "category")}
    text = {name: value if isinstance(value, str) else "" for name, value in fields.items()}
    if not isinstance(upload, web.FileField):
        return _json(400, error="the bundle's .torrent is the 'torrent' field")
    data = upload.file.read(site.config.max_upload_bytes + 1)
    if len(data) > site.config.max_upload_bytes:
        return _json(413, error="the .torrent is too large")
    category = text["category"] or None
    if category is not None and category not in site.config.categories:
        return _json(400, error=f"category: one of {', '.join(site.config.categories)}")
    try:
        torrent = Torrent.decode(data)
        content_key = links.parse_key(text["key"])
        manifest = bundle_files.manifest_of(torrent, content_key)
        gate = gates.parse(text["gate"] or "free")
    except (MetainfoError, BundleError) as error:
        return _json(400, error=str(error))
    try:
        entry = await site.db.entries.add_torrent(
            data, title=text["title"] or manifest.title, description=text["description"], category=category,
            first_tracker=_announce_url(site, request) if site.config.add_site_tracker and site.counts_of else None,
            max_files=site.config.max_files,
        )  # fmt: skip
    except DuplicateEntry as error:
        return _json(409, error="this bundle is listed already", entry_id=error.entry_id)
    except BitswarmError as error:
        return _json(400, error=str(error))
    await _store(request).publish(
        entry.id, account.id, account.name, content_key, keys.kek, gate=gate.kind, price=gate.price,
        goal_count=gate.goal_count, deadline=gate.deadline_epoch,
    )  # fmt: skip
    return _json(201, entry_id=entry.id, page=f"{site.base_url(request)}/b/{entry.id}", gate=gate.text())


async def _basic_account(request: web.Request) -> Account | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or len(encoded) > 2048:
        return None
    try:
        name, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not colon:
        return None
    return await _site(request).db.accounts.verify(name, password)


async def _bundle_of(request: web.Request) -> tuple[Entry, Bundle]:
    entry = await _visible_entry(request)
    bundle = await _store(request).get(entry.id)
    if bundle is None:
        raise web.HTTPNotFound(text="404: no such bundle\n")
    return entry, bundle


async def _share_link(request: web.Request, entry: Entry, bundle: Bundle, passkey: str | None = None) -> str:
    """The entry's magnet link (its tracker with ``passkey``, if given) and the key."""
    site = _site(request)
    try:
        content_key = await _store(request).content_key(bundle, _keys(request).kek)
    except BundleError:
        log.error("bundle %d: its wrapped key does not unwrap (tampered?); not released", entry.id)
        raise web.HTTPServiceUnavailable(text="503: this bundle's key cannot be released\n") from None
    magnet_link = entry.magnet
    if passkey is not None:
        magnet_link += "&tr=" + quote(f"{_announce_url(site, request)}/{passkey}", safe="")
    return links.share_link(magnet_link, content_key)


async def bundle_page(request: web.Request) -> web.Response:
    entry, bundle = await _bundle_of(request)
    share = await _share_link(request, entry, bundle) if bundle.gate == "free" else None
    campaign = await _store(request).campaign(bundle) if bundle.gate == "crowdfund" else None
    goal, deadline = _campaign_facts(bundle)
    response = page(request, "index_bundle.html", entry=entry, bundle=bundle, share=share, campaign=campaign,
                    goal=goal, deadline=deadline)  # fmt: skip
    if share is not None:
        response.headers.update(KEY_PAGE_HEADERS)
    return response


async def redeem(request: web.Request) -> web.Response:
    entry, bundle = await _bundle_of(request)
    keys = _keys(request)
    form = await request.post()
    text = form.get("voucher")
    if bundle.gate != "price":
        raise web.HTTPNotFound(text="404: this bundle is not sold for vouchers\n")
    if not isinstance(text, str) or len(text) > MAX_VOUCHER_CHARS:
        return _message(request, 400, "Not a voucher", "Paste the voucher you were given.")
    try:
        voucher = vouchers.verify(keys.voucher_key.public_key(), text)
        if voucher.bundle != str(entry.id):
            raise BundleError("this voucher is for another bundle")
        _, token = await _store(request).record_sale(bundle, voucher.serial, voucher.amount)
    except BundleError as error:
        return _message(request, 400, "Voucher refused", str(error))
    if token is None:
        return _message(request, 409, "Voucher used", "This voucher has bought this bundle already.")
    raise web.HTTPSeeOther(f"/b/keys/{token}", headers=KEY_PAGE_HEADERS)


async def grant_page(request: web.Request) -> web.Response:
    grant = await _store(request).grant_of(request.match_info["token"])
    if grant is None:
        raise web.HTTPNotFound(text="404: no such key page\n")
    site = _site(request)
    entry = await site.db.entries.get(grant.entry_id)
    bundle = await _store(request).get(grant.entry_id)
    if bundle is None:
        raise web.HTTPNotFound(text="404: no such bundle\n")
    share = await _share_link(request, entry, bundle, grant.passkey)
    response = page(request, "index_bundle_key.html", entry=entry, share=share)
    response.headers.update(KEY_PAGE_HEADERS)
    return response


def _message(request: web.Request, status: int, heading: str, message: str) -> web.Response:
    return page(request, "index_message.html", status=status, heading=heading, message=message)


def issue_voucher(keys: SiteKeys, bundle: Bundle, amount: Decimal | None = None) -> str:
    """A voucher for one purchase of ``bundle`` (its price unless ``amount``): what the site
    signs when a payment is recorded offline."""
    price = amount if amount is not None else bundle.price
    if price is None:
        raise BundleError("this bundle has no price")
    return vouchers.issue(keys.voucher_key, str(bundle.entry_id), price)


def api_error(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", ""))
    except (json.JSONDecodeError, AttributeError):
        return body.decode("utf-8", "replace")[:200]


def _address_key(keys: SiteKeys) -> bytes:
    """The key of the address hashes: from the site's KEK, for this purpose alone."""
    return hashlib.sha256(b"bitswarm index: e-mail address digests " + keys.kek).digest()


async def ask_email(request: web.Request) -> web.Response:
    entry, bundle = await _bundle_of(request)
    site = _site(request)
    keys = _keys(request)
    if bundle.gate != "email":
        raise web.HTTPNotFound(text="404: this bundle has no e-mail gate\n")
    form = await request.post()
    text = form.get("address")
    consent = form.get("consent") == "yes"
    try:
        address = email_gate.normalise_address(text if isinstance(text, str) else "")
    except BundleError:
        return _message(request, 400, "Not an address", "Give one e-mail address, like name@example.org.")
    digest = email_gate.address_digest(_address_key(keys), address)
    try:
        token = await _store(request).ask_email(bundle, digest, address if consent else None)
    except UsageError as error:
        return _message(request, 429, "No mail sent", str(error))
    link = f"{site.base_url(request)}/b/confirm/{token}"
    body = (
        f'Someone (we hope you) asked for "{entry.title}" on {site.config.site_name} with this address.\n\n'
        f"Follow this link within a day to get it:\n{link}\n\nIf it was not you, ignore this mail.\n"
    )
    try:
        await send_mail(site.config, address, f"Your link to {entry.title}", body)
    except UsageError as error:
        return _message(request, 503, "No mail sent", str(error))
    return _message(request, 200, "Check your mail", f"A link to {entry.title} is on its way to {address}.")


async def confirm_email(request: web.Request) -> web.Response:
    token = await _store(request).confirm_email(request.match_info["token"])
    if token is None:
        return _message(request, 404, "Link expired", "This link is unknown or older than a day: ask for a new one.")
    raise web.HTTPSeeOther(f"/b/keys/{token}", headers=KEY_PAGE_HEADERS)


async def fans_csv(request: web.Request) -> web.Response:
    entry, bundle = await _bundle_of(request)
    site = _site(request)
    who = site.sessions.read(request)
    if who is None or (who.name != bundle.owner and await site.db.accounts.role_of(who.account_id) != "operator"):
        raise web.HTTPForbidden(text="403: the bundle's artist and the operators only\n")
    lines = ["address"] + await _store(request).fans(entry.id)
    return web.Response(text="\n".join(lines) + "\n", content_type="text/csv", charset="utf-8",
                        headers={"Cache-Control": "no-store"})  # fmt: skip


def _campaign_facts(bundle: Bundle) -> tuple[Decimal | None, str | None]:
    """A crowdfunded bundle's goal in money and its deadline as text."""
    if bundle.price is None or bundle.goal_count is None or bundle.deadline is None:
        return None, None
    deadline = datetime.fromtimestamp(bundle.deadline, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return bundle.price * bundle.goal_count, deadline


async def pledge(request: web.Request) -> web.Response:
    entry, bundle = await _bundle_of(request)
    keys = _keys(request)
    if bundle.gate != "crowdfund":
        raise web.HTTPNotFound(text="404: this bundle is not crowdfunded\n")
    form = await request.post()
    text = form.get("voucher")
    if not isinstance(text, str) or len(text) > MAX_VOUCHER_CHARS:
        return _message(request, 400, "Not a voucher", "Paste the voucher you were given.")
    try:
        voucher = vouchers.verify(keys.voucher_key.public_key(), text)
        if voucher.bundle != str(entry.id):
            raise BundleError("this voucher is for another bundle")
        token = await _store(request).pledge(bundle, voucher.serial, voucher.amount)
    except BundleError as error:
        return _message(request, 400, "Pledge refused", str(error))
    if token is None:
        return _message(request, 409, "Voucher used", "This voucher was pledged already.")
    raise web.HTTPSeeOther(f"/b/pledges/{token}", headers=KEY_PAGE_HEADERS)


async def pledge_page(request: web.Request) -> web.Response:
    store = _store(request)
    found = await store.pledge_of(request.match_info["token"])
    if found is None:
        raise web.HTTPNotFound(text="404: no such pledge\n")
    site = _site(request)
    bundle = await store.get(found.entry_id)
    if bundle is None:
        raise web.HTTPNotFound(text="404: no such bundle\n")
    campaign = await store.campaign(bundle)
    current = await store.pledge_of(request.match_info["token"])  # settling may have released it
    assert current is not None
    entry = await site.db.entries.get(found.entry_id)
    share = await _share_link(request, entry, bundle, current.passkey) if current.passkey is not None else None
    goal, deadline = _campaign_facts(bundle)
    response = page(request, "index_bundle_pledge.html", entry=entry, bundle=bundle, pledge=current,
                    campaign=campaign, share=share, goal=goal, deadline=deadline)  # fmt: skip
    response.headers.update(KEY_PAGE_HEADERS)
    return response
