"""Where a grabbed torrent goes: a ``TorrentSink``.

- ``WatchFolderSink`` writes ``<info-hash>.torrent`` (the checked .torrent bytes) or
  ``<info-hash>.magnet`` (the link, one line) into a folder that a client watches
  (transmission-daemon's ``watch-dir``, bitswarm's daemon). The file is written under a
  hidden temporary name and renamed, so a watcher never reads half a file. The name is the
  info-hash, never the feed's title: titles come from the network.
- ``TransmissionSink`` adds it to a Transmission-compatible daemon over its RPC
  (``torrent-add`` with ``metainfo`` or ``filename``, ``download-dir`` and ``labels``),
  through ``bitswarm.remote`` (the ``transmission-rpc`` package), and removes the download a proper replaces
  (its data kept: the new torrent brings its own files).

The daemon to come adds to its session through a sink of its own, with the same ``add``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bitswarm.errors import RemoteError, SinkError, TorrentNotFound, UsageError
from bitswarm.remote import AddSource, Endpoint, RemoteDaemon, split_rpc_url
from bitswarm.storage.atomic import replace_durably

log = logging.getLogger("bitswarm.feeds")

# Transmission's RPC answers on loopback within milliseconds; a busy seedbox within seconds.
RPC_TIMEOUT_S = 30.0


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
    """A Transmission RPC endpoint (``http://127.0.0.1:9091/transmission/rpc``), through the
    same client as ``bitswarm ctl`` (``bitswarm.remote``)."""

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None) -> None:
        try:
            split_rpc_url(url)
        except UsageError as error:
            raise SinkError(str(error)) from None
        self.url = url
        self._endpoint = Endpoint(url, username=username, password=password, timeout_s=RPC_TIMEOUT_S)

    async def add(self, delivery: Delivery) -> None:
        await asyncio.to_thread(self._add, delivery)

    def _add(self, delivery: Delivery) -> None:
        if delivery.metainfo is None and delivery.magnet_uri is None:
            raise SinkError(f"{delivery.title}: neither a .torrent nor a magnet link")
        source = AddSource(
            label=delivery.title,
            metainfo=delivery.metainfo,
            filename=delivery.magnet_uri if delivery.metainfo is None else None,
            info_hash=delivery.info_hash or None,
        )
        try:
            daemon = RemoteDaemon(self._endpoint)
            added = daemon.add(source, download_dir=delivery.download_dir, labels=delivery.labels)
            for old in delivery.replaces:
                if old == added.info_hash:
                    continue
                try:
                    (torrent,) = daemon.resolve([old])
                except TorrentNotFound:
                    continue  # removed already, by hand
                daemon.remove([int(torrent["id"])], delete_data=False)
                log.info("%s: replaced %s", delivery.title, old)
        except RemoteError as error:
            raise SinkError(str(error)) from None
