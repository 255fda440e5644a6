"""The bitswarm error family.

The class says whose fault an error is: ``DecodeError`` and ``MetainfoError`` blame the
input, ``ProtocolError`` the remote side, ``UsageError`` our own caller. This module
imports nothing from bitswarm so that every other module can import it.
"""

from __future__ import annotations


class BitswarmError(Exception):
    """Base of every error bitswarm raises on purpose."""


class DecodeError(BitswarmError):
    """Bencoded input broke the format; ``offset`` is the byte where it went wrong."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"bencode: {message} at byte {offset}")
        self.offset = offset


class MetainfoError(BitswarmError):
    """A torrent or magnet link is well-formed bencode but not a valid torrent.

    ``field`` names the offending key (``info.piece length``, ``xt``) so the user can find it.
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class UnsafePathError(MetainfoError):
    """A path in a torrent could lead outside the download folder or collide with another."""


class StorageError(BitswarmError):
    """Content on disk cannot be read or written as the torrent requires."""


class ProtocolError(BitswarmError):
    """The remote side broke a protocol rule."""


class TrackerError(ProtocolError):
    """A tracker refused an announce or answered with something broken."""


class PeerProtocolError(ProtocolError):
    """A peer broke the peer wire protocol; that one connection ends."""


class PortMappingError(ProtocolError):
    """A router's NAT-PMP, PCP or UPnP IGD service refused a port mapping or answered with
    something broken; ``code`` is its result or error code when it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class UTPError(ProtocolError):
    """A uTP datagram broke BEP 29 (a bad header, extension or acknowledgement); it costs
    that datagram, never the connection it names, since anyone can forge one."""

    def __init__(self, message: str) -> None:
        super().__init__(f"uTP: {message}")


class UsageError(BitswarmError):
    """Our own caller broke a rule (bad argument, call on a closed core)."""


class KRPCError(ProtocolError):
    """A DHT node sent a KRPC message that breaks BEP 5 (or answered with a KRPC error).

    ``code`` is the BEP 5 error code that answers it (201 generic, 202 server, 203
    protocol, 204 method unknown). ``transaction_id`` is the query's ``t`` when it could
    be read, so that the error can be sent back; None means the datagram gets silence.
    """

    GENERIC = 201
    SERVER = 202
    PROTOCOL = 203
    METHOD_UNKNOWN = 204

    def __init__(self, code: int, message: str, transaction_id: bytes | None = None) -> None:
        super().__init__(f"krpc {code}: {message}")
        self.code = code
        self.message = message
        self.transaction_id = transaction_id


class WebSeedError(ProtocolError):
    """A BEP 19 web seed answered wrongly: an HTTP error, a wrong range or length, a timeout."""


class StreamTimeout(BitswarmError):
    """A stream reader waited longer than its timeout for a piece no source delivered."""


class IndexDatabaseError(BitswarmError):
    """The index's database cannot be used: an unsupported URL, a server that does not
    answer, a schema that cannot be migrated."""


class EntryError(BitswarmError):
    """An index entry cannot be made or changed as asked (the uploader's or operator's input)."""


class InvalidEntry(EntryError):
    """A field of an entry breaks a rule of the site; ``field`` names it (``title``, ``tags``)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class EntryLimitExceeded(InvalidEntry):
    """A field is longer or larger than the site allows; ``limit`` is the bound it broke."""

    def __init__(self, message: str, field: str, limit: int) -> None:
        super().__init__(message, field)
        self.limit = limit


class DuplicateEntry(EntryError):
    """The torrent is already listed: ``entry_id`` is the entry that shares a v1 or v2 info-hash."""

    def __init__(self, entry_id: int) -> None:
        super().__init__(f"already listed as entry {entry_id}")
        self.entry_id = entry_id


class EntryNotFound(EntryError):
    """No entry has this id (or info-hash)."""

    def __init__(self, entry_id: int | str) -> None:
        super().__init__(f"no entry {entry_id}")
        self.entry_id = entry_id


class EntryStateError(EntryError):
    """The entry is not in the state the operation needs (metadata for an entry that has it)."""


class FeedError(ProtocolError):
    """A subscribed feed, or a torrent it links to, cannot be used: an HTTP error, a body
    over its limit, malformed XML, entity declarations, an enclosure that is not a torrent.
    It costs that feed (or item) one poll; ``url`` is the feed's address without its query
    (which may hold a passkey)."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(f"{url}: {message}" if url else message)
        self.url = url


class SinkError(BitswarmError):
    """A torrent could not be handed on: the watch folder cannot be written, or the
    Transmission-compatible daemon refused it or did not answer."""


class RemoteError(BitswarmError):
    """A daemon driven over the Transmission RPC refused a request or answered wrongly."""


class RemoteUnreachable(RemoteError):
    """Nothing answered the RPC (refused connection, timeout, not an RPC endpoint)."""


class RemoteAuthError(RemoteError):
    """The daemon refused our credentials (401) or our address (403)."""


class TorrentNotFound(RemoteError):
    """The daemon has no torrent with this id or info-hash."""

    def __init__(self, torrent_id: int | str) -> None:
        super().__init__(f"no torrent {torrent_id}")
        self.torrent_id = torrent_id


class RpcRequestError(UsageError):
    """A Transmission RPC request broke the protocol's rules (a wrong type, an unknown
    method); its text is the ``result`` string the caller is sent."""
