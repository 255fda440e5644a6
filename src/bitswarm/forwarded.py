"""The client's address behind a reverse proxy, believed only from proxies we trust.

Behind nginx or a CDN every connection comes from the proxy; the proxy names the client in
``X-Forwarded-For`` (each proxy appends the address it saw) or ``X-Real-IP``. Anyone can
send those headers, so they count only on a connection from a trusted proxy, and in
``X-Forwarded-For`` only the addresses appended by trusted proxies: walking from the right,
the first address that is not a trusted proxy is the client (what nginx's real_ip module
does with ``real_ip_recursive on``). Sans-IO.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from bitswarm.errors import UsageError

# A proxy chain longer than this is no chain we configured: the rest is not looked at.
MAX_FORWARDED_HOPS = 16
MAX_HEADER_CHARS = 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    """Addresses and networks (``10.0.0.0/8``, ``::1``) of the proxies in front of us."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        parsed = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise UsageError(f"trusted_proxies: {text!r} is not an address or network") from None
        self.networks = tuple(parsed)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str) -> bool:
        address = _address(host)
        return address is not None and self._trusts(address)

    def _trusts(self, address: IPAddress) -> bool:
        return any(address.version == network.version and address in network for network in self.networks)

    def client_host(self, peer_host: str, forwarded_for: str | None, real_ip: str | None) -> str:
        """The client's address for a connection from ``peer_host`` carrying these headers."""
        peer = _address(peer_host)
        if peer is None or not self._trusts(peer):
            return peer_host
        if forwarded_for is not None and len(forwarded_for) <= MAX_HEADER_CHARS:
            client: IPAddress | None = None
            for item in reversed(forwarded_for.split(",")[-MAX_FORWARDED_HOPS:]):
                address = _address(item.strip())
                if address is None:
                    break  # garbage: trust what the proxies appended after it, no more
                client = address
                if not self._trusts(address):
                    break
            if client is not None:
                return str(client)
        if real_ip is not None and (address := _address(real_ip.strip())) is not None:
            return str(address)
        return peer_host


def _address(text: str) -> IPAddress | None:
    """An IP address (IPv4-mapped IPv6 as IPv4, as a dual-stack socket reports IPv4 peers)."""
    try:
        address = ipaddress.ip_address(text.removeprefix("[").removesuffix("]") if text.startswith("[") else text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
