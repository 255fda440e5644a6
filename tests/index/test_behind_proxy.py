"""``bitswarm index`` behind a real reverse proxy (Debian's nginx), as a site runs behind
TLS termination: peers announcing through the proxy from several loopback addresses see
each other's own addresses, and the site's per-address budgets fall on each visitor, not
on the proxy."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import aiohttp

from bitswarm import bencode
from bitswarm.index.config import IndexConfig
from bitswarm.metainfo import read_torrent_file
from index.support import run
from index.test_site import compact_announce, serving, upload_fields
from webseed_nginx import nginx_binary, serve_with_nginx

PROXY = """
        location / {{
            proxy_pass http://127.0.0.1:{port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
        }}
"""


def peers_of(reply: object) -> set[tuple[str, int]]:
    assert isinstance(reply, dict)
    peers = reply[b"peers"]
    assert isinstance(peers, bytes)
    return {(".".join(map(str, peers[at : at + 4])), int.from_bytes(peers[at + 4 : at + 6], "big"))
            for at in range(0, len(peers), 6)}  # fmt: skip


def test_peers_and_visitors_behind_nginx_are_told_apart_by_their_own_addresses(tmp_path: Path) -> None:
    binary = nginx_binary()
    assert binary is not None, "nginx-light is installed by scripts/test"
    fields = upload_fields(tmp_path, "Proxied", {"p.bin": b"p" * 4000})
    info_hash = read_torrent_file(fields["torrent"][1]).info_hash_v1  # type: ignore[index]
    assert info_hash is not None
    config = IndexConfig(
        bind="127.0.0.1:0", db=f"sqlite:///{tmp_path / 'index.db'}", secret_key="k" * 40,
        trusted_proxies=("127.0.0.1",), searches_per_minute=2,
    )  # fmt: skip

    async def main() -> None:
        async with serving(config) as site:
            with ExitStack() as stack:
                body = PROXY.format(port=site.rsplit(":", 1)[1])
                nginx = stack.enter_context(serve_with_nginx(tmp_path, tmp_path / "nginx", binary, server_body=body))
                proxy = nginx.url.rstrip("/")
                replies = []
                for number in (2, 3, 4):
                    connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{number}", 0))
                    async with aiohttp.ClientSession(connector=connector) as http:
                        url = compact_announce(proxy, info_hash, 6000 + number, 100)
                        async with http.get(url, headers={"X-Forwarded-For": "198.51.100.1"}) as response:
                            replies.append(bencode.decode(await response.read()))
                        # Two searches a minute per address: the third is refused, for this visitor only.
                        statuses = []
                        for _ in range(3):
                            async with http.get(f"{proxy}/search?q=proxied") as response:
                                statuses.append(response.status)
                        assert statuses == [200, 200, 429]
                assert peers_of(replies[-1]) == {("127.0.0.2", 6002), ("127.0.0.3", 6003)}

    run(asyncio.wait_for(main(), 60))
