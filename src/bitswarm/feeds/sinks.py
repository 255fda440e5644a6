"""Where a grabbed torrent goes: a ``TorrentSink``.

- ``WatchFolderSink`` writes ``<info-hash>.torrent`` (the checked .torrent bytes) or
  ``<info-hash>.magnet`` (the link, one line) into a folder that a client watches
  (transmission-daemon's ``watch-dir``, bitswarm's daemon). The file is written under a
  hidden temporary name and renamed, so a watcher never reads half a file. The name is the
  info-hash, never the feed's title: titles come from the network.
- ``TransmissionSink`` adds it to a Transmission-compatible daemon over its RPC
  (``torrent-add`` with ``metainfo`` or ``filename``, ``download-dir`` and ``labels``),
  through the ``transmission-rpc`` package, and removes the download a proper replaces
  (its data kept: the new torrent brings its own files).

The daemon to come adds to its session through a sink of its own, with the same ``add``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from bitswarm.errors import SinkError
from bitswarm.storage.atomic import replace_durably

log = logging.getLogger("bitswarm.feeds")

# Transmission's RPC answers on loopback within milliseconds; a busy seedbox within seconds.
RPC_TIMEOUT_S = 30.0
# Transmission 4.0 (RPC 17) was the first to take labels in torrent-add; 3.00 takes them
# in torrent-set only.
_RPC_VERSION_ADD_LABELS = 17


@dataclass(frozen=True, slots=True)
class Delivery:
    """A torrent to add: the checked ``metainfo`` bytes, or a ``magnet_uri``; ``info_hash``
    in hex; ``replaces`` the info-hashes of earlier downloads it supersedes."""

    title: str
    info_hash: str
    metainfo: bytes | None = None
    magnet_uri: str | None = None
    download_dir: str | None = None
    labels: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()


class TorrentSink(Protocol):
    async def add(self, delivery: Delivery) -> None:
        """Hand the torrent on; raises ``SinkError`` when it was not taken."""


class WatchFolderSink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def add(self, delivery: Delivery) -> None:
        if delivery.metainfo is not None:
            name, data = f"{delivery.info_hash}.torrent", delivery.metainfo
        elif delivery.magnet_uri is not None:
            name, data = f"{delivery.info_hash}.magnet", delivery.magnet_uri.encode() + b"\n"
        else:
            raise SinkError(f"{delivery.title}: neither a .torrent nor a magnet link")
        try:
            await asyncio.to_thread(self._write, self.folder / name, data)
        except OSError as error:
            raise SinkError(f"{self.folder}: {error.strerror or error}") from None

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_durably(path, data)


class TransmissionSink:
    """A Transmission RPC endpoint (``http://127.0.0.1:9091/transmission/rpc``)."""

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SinkError(f"--rpc: {url}: not an http:// or https:// address")
        self.url = url
        self._options = {
            "protocol": parts.scheme,
            "host": parts.hostname,
            "port": parts.port or (443 if parts.scheme == "https" else 80),
            "path": parts.path or "/transmission/rpc",
            "username": username if username is not None else parts.username,
            "password": password if password is not None else parts.password,
        }

    async def add(self, delivery: Delivery) -> None:
        await asyncio.to_thread(self._add, delivery)

    def _add(self, delivery: Delivery) -> None:
        # Imported here: requests and the client load in ~100 ms, paid only when adding.
        import transmission_rpc  # noqa: PLC0415

        torrent: bytes | str | None = delivery.metainfo if delivery.metainfo is not None else delivery.magnet_uri
        if torrent is None:
            raise SinkError(f"{delivery.title}: neither a .torrent nor a magnet link")
        try:
            client = transmission_rpc.Client(timeout=RPC_TIMEOUT_S, **self._options)  # type: ignore[arg-type]
            labels_in_add = client.get_session().rpc_version >= _RPC_VERSION_ADD_LABELS
            added = client.add_torrent(
                torrent,
                download_dir=delivery.download_dir,
                labels=list(delivery.labels) if delivery.labels and labels_in_add else None,
            )
            if delivery.labels and not labels_in_add:
                client.change_torrent(added.hashString, labels=list(delivery.labels))
            for old in delivery.replaces:
                if old != added.hashString:
                    client.remove_torrent(old, delete_data=False)
                    log.info("%s: replaced %s", delivery.title, old)
        except transmission_rpc.TransmissionError as error:
            raise SinkError(f"{self.url}: {error.message or error}") from None
