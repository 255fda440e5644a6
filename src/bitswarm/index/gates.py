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
- ``POST /b/ID/checkout`` (with a configured payment provider): the buyer goes to the
  provider's checkout with an order reference and comes back to ``/b/orders/TOKEN``, which
  shows the key once the provider's signed call to ``POST /payments/webhook`` (signature,
  age and replay checked, ``bitswarm.bundle.webhooks``) says the order was paid.
- ``/account/keys``: a signed-in artist's own copies of their bundles' keys, opened with
  their password (asked again: the site keeps no password and cannot open them alone).
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
from urllib.parse import quote, urlencode

from aiohttp import web

from bitswarm.bundle import email_gate, gates, links, vouchers, webhooks
from bitswarm.bundle import files as bundle_files
from bitswarm.bundle import keys as bundle_keys
from bitswarm.bundle.format import BundleError, BundleHeader
from bitswarm.errors import BitswarmError, DuplicateEntry, MetainfoError, UsageError
from bitswarm.index.accounts import Account
from bitswarm.index.bundles import API_HEADER, WEBHOOK_SIGNATURE, Bundle, BundleStore, SiteKeys
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
        web.get(r"/b/{entry_id:\d{1,12}}/cover", cover_image),
        web.post(r"/b/{entry_id:\d{1,12}}/redeem", redeem),
        web.get(r"/b/keys/{token:[A-Za-z0-9_-]{20,100}}", grant_page),
        web.post(r"/b/{entry_id:\d{1,12}}/email", ask_email),
        web.get(r"/b/confirm/{token:[A-Za-z0-9_-]{20,100}}", confirm_email),
        web.get(r"/b/{entry_id:\d{1,12}}/fans.csv", fans_csv),
        web.post(r"/b/{entry_id:\d{1,12}}/pledge", pledge),
        web.get(r"/b/pledges/{token:[A-Za-z0-9_-]{20,100}}", pledge_page),
        web.post(r"/b/{entry_id:\d{1,12}}/checkout", checkout),
        web.get(r"/b/orders/{token:[A-Za-z0-9_-]{20,100}}", order_page),
        web.post("/payments/webhook", payment_webhook),
        web.get("/account/keys", my_keys_form),
        web.post("/account/keys", my_keys),
    ])  # fmt: skip


async def _grants_changed(request: web.Request) -> None:
    """The site's tracker learns the new passkeys (and swarms) at once."""
    changed = _site(request).private_swarms_changed
    if changed is not None:
        await changed()


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
    signed_in = await _basic_account(request)
    if signed_in is None:
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
    account, password = signed_in
    # The artist's own copy, under their master key: their password opens it, the site cannot.
    account_keys = await site.db.accounts.keys_of(account.id)
    master = await site.db.accounts.open_master(account, password)
    assert account_keys is not None
    binding = bundle_keys.child_binding(account_keys, bundle_keys.KIND_BUNDLE, f"entry-{entry.id}")
    owner_copy = bundle_keys.wrap(content_key, master, binding).encode()
    await _store(request).publish(
        entry.id, account.id, account.name, content_key, keys.kek, gate=gate.kind, price=gate.price,
        goal_count=gate.goal_count, deadline=gate.deadline_epoch, owner_copy=owner_copy,
    )  # fmt: skip
    facts: dict[str, object] = {"entry_id": entry.id, "page": f"{site.base_url(request)}/b/{entry.id}",
                                "gate": gate.text()}  # fmt: skip
    if gate.kind != "free":
        # A gated bundle's swarm is private on the site's tracker: the artist seeds with this.
        facts["announce"] = f"{_announce_url(site, request)}/{await _store(request).owner_passkey(entry.id)}"
        await _grants_changed(request)
    return _json(201, **facts)


async def _basic_account(request: web.Request) -> tuple[Account, str] | None:
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
    account = await _site(request).db.accounts.verify(name, password)
    return (account, password) if account is not None else None


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


async def _header(request: web.Request, entry: Entry) -> BundleHeader:
    data = await _site(request).db.entries.torrent_bytes(entry.id)
    if data is None:
        raise web.HTTPNotFound(text="404: no such bundle\n")
    return bundle_files.header_of(Torrent.decode(data))


async def cover_image(request: web.Request) -> web.Response:
    """The bundle's public cover, from the clear part of its torrent's header."""
    entry, _ = await _bundle_of(request)
    header = await _header(request, entry)
    if header.cover is None or header.cover_type is None:
        raise web.HTTPNotFound(text="404: this bundle has no cover\n")
    return web.Response(body=header.cover, content_type=header.cover_type,
                        headers={"Cache-Control": "public, max-age=86400"})  # fmt: skip


async def bundle_page(request: web.Request) -> web.Response:
    entry, bundle = await _bundle_of(request)
    has_cover = (await _header(request, entry)).cover is not None
    share = await _share_link(request, entry, bundle) if bundle.gate == "free" else None
    campaign = await _store(request).campaign(bundle) if bundle.gate == "crowdfund" else None
    goal, deadline = _campaign_facts(bundle)
    checkout = bool(_site(request).config.payment_checkout_url)
    response = page(request, "index_bundle.html", entry=entry, bundle=bundle, share=share, campaign=campaign,
                    goal=goal, deadline=deadline, checkout=checkout, has_cover=has_cover)  # fmt: skip
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
    await _grants_changed(request)
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
    await _grants_changed(request)
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
    await _grants_changed(request)  # the pledge may have met the goal: every backer's passkey
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


async def checkout(request: web.Request) -> web.Response:
    entry, bundle = await _bundle_of(request)
    site = _site(request)
    if bundle.gate != "price" or bundle.price is None or not site.config.payment_checkout_url:
        raise web.HTTPNotFound(text="404: no checkout for this bundle\n")
    order_ref, token = await _store(request).open_order(bundle)
    back = f"{site.base_url(request)}/b/orders/{token}"
    query = urlencode({"order": order_ref, "bundle": entry.id, "amount": str(bundle.price), "return": back})
    raise web.HTTPSeeOther(f"{site.config.payment_checkout_url}?{query}", headers=KEY_PAGE_HEADERS)


async def order_page(request: web.Request) -> web.Response:
    found = await _store(request).order_of(request.match_info["token"])
    if found is None:
        raise web.HTTPNotFound(text="404: no such order\n")
    entry_id, passkey = found
    site = _site(request)
    entry = await site.db.entries.get(entry_id)
    bundle = await _store(request).get(entry_id)
    if bundle is None:
        raise web.HTTPNotFound(text="404: no such bundle\n")
    if passkey is None:
        waiting = "The payment provider has not confirmed this order yet: reload this page in a moment."
        response = _message(request, 200, "Waiting for the payment", waiting)
    else:
        share = await _share_link(request, entry, bundle, passkey)
        response = page(request, "index_bundle_key.html", entry=entry, share=share)
    response.headers.update(KEY_PAGE_HEADERS)
    return response


async def payment_webhook(request: web.Request) -> web.Response:
    """The provider's call: answered 200 once taken (or taken before: providers retry), 400
    when it does not check out; the reason in JSON, nothing about the payer logged."""
    site = _site(request)
    secret = site.config.payment_webhook_secret.encode()
    if not secret:
        raise web.HTTPNotFound(text="404: no payment provider\n")
    body = await request.content.read(webhooks.MAX_BODY_BYTES + 1)
    try:
        event = webhooks.verify(secret, request.headers.get(WEBHOOK_SIGNATURE), body, site.clock(), set())
        if not event.bundle.isdigit() or event.order is None:
            raise BundleError("the payment names no bundle or order of this site")
        bundle = await _store(request).get(int(event.bundle))
        if bundle is None:
            raise BundleError("no such bundle")
        new = await _store(request).paid(bundle, event.event_id, event.order, event.payment_id, event.amount)
    except BundleError as error:
        return _json(400, error=str(error))
    if new:
        await _grants_changed(request)
    return _json(200, taken=new)


async def my_keys_form(request: web.Request) -> web.Response:
    if _site(request).sessions.read(request) is None:
        raise web.HTTPSeeOther("/login")
    return page(request, "index_my_keys.html", bundles=None, error=None)


async def my_keys(request: web.Request) -> web.Response:
    site = _site(request)
    who = site.sessions.read(request)
    if who is None:
        raise web.HTTPSeeOther("/login")
    form = await request.post()
    password = form.get("password")
    account = await site.db.accounts.verify(who.name, password) if isinstance(password, str) else None
    if account is None or account.id != who.account_id:
        return page(request, "index_my_keys.html", status=403, bundles=None, error="Wrong password.")
    stored = await site.db.accounts.keys_of(account.id)
    master = await site.db.accounts.open_master(account, password if isinstance(password, str) else "")
    assert stored is not None
    shown = []
    for entry_id, blob in await _store(request).owned(account.id):
        binding = bundle_keys.child_binding(stored, bundle_keys.KIND_BUNDLE, f"entry-{entry_id}")
        try:
            content_key = bundle_keys.unwrap(bundle_keys.WrappedKey.decode(blob), master, binding)
        except BundleError:
            log.error("bundle %d: the owner's copy of its key does not unwrap; not shown", entry_id)
            continue
        entry = await site.db.entries.get(entry_id)
        shown.append({"entry": entry, "share": links.share_link(entry.magnet, content_key)})
    response = page(request, "index_my_keys.html", bundles=shown, error=None)
    response.headers.update(KEY_PAGE_HEADERS)
    return response
