"""v2-only torrents (BEP 52) between bitswarm and libtorrent 2.0 on loopback.

The shared payload with 32 KiB pieces: files that end mid-piece (so each is followed by
an alignment gap), an empty file, a file of exactly two pieces. The handshake carries the
SHA-256 info-hash truncated to 20 bytes, which is also what the tracker counts; peers
find each other only through `bitswarm tracker`. Every copy is compared byte for byte.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bitswarm.metainfo import Torrent, TorrentVersion

from .payload import PIECE_LENGTH
from .test_peer_interop import (
    BITSWARM,
    assert_same_tree,
    bitswarm_get,
    bitswarm_seed,
    libtorrent_download,
    libtorrent_seed,
    payload,
    tracker,
)
from .tools import lt
from .trackers import TrackerUrls

pytestmark = pytest.mark.interop

__all__ = ["payload", "tracker"]  # fixtures, used by name


def create_v2(content: Path, out: Path, tracker_url: str, creator: str) -> bytes:
    """A v2-only torrent of ``content`` made by ``creator``; returns its wire info-hash."""
    if creator == "bitswarm":
        argv = [*BITSWARM, "create", str(content), "-o", str(out), "--v2"]
        argv += ["--piece-length", str(PIECE_LENGTH), "-t", tracker_url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    else:
        lt("create", content, out, "--format", "v2", "--piece-length", str(PIECE_LENGTH), "--tracker", tracker_url)
    torrent = Torrent.decode(out.read_bytes())
    assert torrent.version is TorrentVersion.V2
    assert torrent.info_hash_v2 is not None
    # Files end mid-piece: the next one starts after an alignment gap.
    assert any(entry.length % PIECE_LENGTH for entry in torrent.data_files())
    return torrent.info_hash_v2[:20]


@pytest.mark.parametrize("creator", ["bitswarm", "libtorrent"])
def test_bitswarm_downloads_a_v2_only_torrent_from_libtorrent(
    tmp_path: Path, tracker: TrackerUrls, payload: Path, creator: str
) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = create_v2(payload, torrent, tracker.announce, creator)
    with libtorrent_seed(torrent, payload.parent):
        bitswarm_get(torrent, tmp_path / "get", tracker, info_hash)
    assert_same_tree(payload, tmp_path / "get" / payload.name)


@pytest.mark.parametrize("creator", ["bitswarm", "libtorrent"])
def test_libtorrent_downloads_a_v2_only_torrent_from_bitswarm(
    tmp_path: Path, tracker: TrackerUrls, payload: Path, creator: str
) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = create_v2(payload, torrent, tracker.announce, creator)
    leech = tmp_path / "leech"
    leech.mkdir()
    with bitswarm_seed(torrent, payload.parent, tracker, info_hash) as port:
        report = libtorrent_download(torrent, leech)
    assert [(peer["ip"], peer["port"], peer["outgoing"]) for peer in report["peers"]] == [("127.0.0.1", port, True)]
    assert_same_tree(payload, leech / payload.name)
