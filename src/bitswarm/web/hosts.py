"""Host names in HTTP requests: which are loopback, and the host part of a Host header;
and the listening socket every HTTP app binds (the index site, the daemon).

Apart from the middleware (``bitswarm.web.security``) so that a command can check its
--bind address without loading the HTTP framework.
"""

from __future__ import annotations

import ipaddress
import socket

# RFC 1035: a host name is at most 253 characters; a Host header longer is no host of ours.
MAX_HOST_BYTES = 255


def host_name(host_header: str) -> str | None:
    """The host part of a Host header (no port, IPv6 brackets removed, lower case), or
    None when it is not of the form ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``."""
    if not host_header or len(host_header) > MAX_HOST_BYTES:
        return None
    text = host_header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and not _is_port(text[end + 1 :])):
            return None
        return text[1:end]
    name, colon, port = text.partition(":")
    if colon and not port.isdigit():
        return None
    return name.rstrip(".") or None


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def is_loopback_host(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, what: str = "read the files") -> str | None:
    """The warning for a server bound beyond loopback (None on loopback)."""
    if is_loopback_host(host):
        return None
    return f"warning: serving on {host}: anyone who can reach this address can {what}"


def url_host(host: str) -> str:
    """``host`` as a URL names it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def listening_socket(host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket listening on ``host``:``port`` (every address when
    ``host`` is empty, IPv4 too on an IPv6 socket); raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and not host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))  # noqa: S104 - as configured
        sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
