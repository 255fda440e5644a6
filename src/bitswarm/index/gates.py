"""Bundle pages and their gates on the index site, and the publishing API.

- ``POST /api/bundles`` (``bitswarm bundle publish``): an account's bundle torrent, its key
  and its gate; a program's request (the ``X-Bitswarm-Api`` header, HTTP Basic credentials),
  not a form. The key must open the torrent's manifest; the site keeps it wrapped.
- ``/b/ID``: the bundle's title, description, size and terms, without the key; a free
  bundle's share link (the key in its fragment); a priced one's voucher form.
- ``POST /b/ID/redeem``: a voucher of the offline provider, signed by the site, buys the
  key once; the sale is recorded and split exactly; the buyer is sent to their grant page.
- ``/b/keys/TOKEN``: a grant: the share link with a tracker passkey of that grant's own.

Pages that show a key load no third-party script (the site's CSP allows its own scripts
only), are not cached, and send no referrer to other sites.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from decimal import Decimal
from urllib.parse import quote

from aiohttp import web

from bitswarm.bundle import files as bundle_files
from bitswarm.bundle import gates, links, vouchers
from bitswarm.bundle.format import BundleError
from bitswarm.errors import BitswarmError, DuplicateEntry, MetainfoError
from bitswarm.index.accounts import Account
from bitswarm.index.bundles import API_HEADER, Bundle, BundleStore, SiteKeys
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
    response = page(request, "index_bundle.html", entry=entry, bundle=bundle, share=share,
                    goal=bundle.price * bundle.goal_count if bundle.price and bundle.goal_count else None)  # fmt: skip
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
