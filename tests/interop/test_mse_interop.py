"""Protocol encryption (MSE/PE) with real peers that require it (issue 5, points 4 and 5).

- libtorrent 2.0 with encryption required (out_enc_policy and in_enc_policy forced,
  allowed_enc_level RC4; `lt_driver.py --encryption required`) downloads from
  `bitswarm seed --encryption require`, and seeds to `bitswarm get --encryption require`;
- transmission-daemon 3.00 with encryption required (`"encryption": "required"` through
  session-set, which it writes back as 2 in settings.json) seeds to `bitswarm get` under
  the default policy, prefer.

Either side refuses anything but RC4, so a finished transfer is itself the proof that
the two spoke MSE; libtorrent's own report says so too ("rc4" on its one peer). Peers
meet through `bitswarm tracker` only, on loopback; every copy is compared byte for byte.
The direction where Transmission downloads needs network namespaces (it ignores 127.x
peers from a tracker) and is in test_mixed_swarm_interop.py's style, below.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .payload import write_payload
from .test_peer_interop import (
    START_TIMEOUT_S,
    TR_STATUS_SEED,
    assert_same_tree,
    bitswarm_create,
    bitswarm_get,
    bitswarm_seed,
    libtorrent_download,
    libtorrent_seed,
    wait_for_seed,
)
from .trackers import TrackerUrls, run_bitswarm_tracker, run_transmission, wait_for

pytestmark = pytest.mark.interop

LT_REQUIRED = ("--encryption", "required")
BITSWARM_REQUIRE = ("--encryption", "require")


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[TrackerUrls]:
    with run_bitswarm_tracker(tmp_path / "tracker.log") as urls:
        yield urls


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    return write_payload(tmp_path / "seed", seed=505)


def test_libtorrent_requiring_encryption_downloads_from_bitswarm(
    tmp_path: Path, tracker: TrackerUrls, payload: Path
) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = bitswarm_create(payload, torrent, tracker.announce)
    leech = tmp_path / "leech"
    leech.mkdir()
    with bitswarm_seed(torrent, payload.parent, tracker, info_hash, BITSWARM_REQUIRE) as port:
        report = libtorrent_download(torrent, leech, LT_REQUIRED)
    [peer] = report["peers"]
    assert (peer["ip"], peer["port"], peer["outgoing"]) == ("127.0.0.1", port, True)
    assert peer["encryption"] == "rc4"
    assert_same_tree(payload, leech / payload.name)


def test_bitswarm_downloads_from_libtorrent_requiring_encryption(
    tmp_path: Path, tracker: TrackerUrls, payload: Path
) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = bitswarm_create(payload, torrent, tracker.announce)
    with libtorrent_seed(torrent, payload.parent, LT_REQUIRED):
        bitswarm_get(torrent, tmp_path / "get", tracker, info_hash, BITSWARM_REQUIRE)
    assert_same_tree(payload, tmp_path / "get" / payload.name)


def test_bitswarm_downloads_from_transmission_requiring_encryption(
    tmp_path: Path, tracker: TrackerUrls, payload: Path
) -> None:
    torrent = tmp_path / "payload.torrent"
    info_hash = bitswarm_create(payload, torrent, tracker.udp)
    with run_transmission(tmp_path / "transmission") as transmission:
        transmission.rpc("session-set", encryption="required")
        assert transmission.rpc("session-get")["encryption"] == "required"
        transmission.rpc("torrent-add", filename=str(torrent), **{"download-dir": str(payload.parent)})

        def seeding() -> bool:
            [state] = transmission.rpc("torrent-get", fields=["status", "percentDone", "error", "errorString"])[
                "torrents"
            ]
            assert state["error"] in (0, 1), state["errorString"]  # 1: a tracker warning, retried
            return bool(state["status"] == TR_STATUS_SEED and state["percentDone"] == 1)

        wait_for(seeding, "transmission seeding the payload", START_TIMEOUT_S)
        wait_for_seed(tracker, info_hash, "transmission")
        bitswarm_get(torrent, tmp_path / "get", tracker, info_hash)  # prefer, the default
        [stats] = transmission.rpc("torrent-get", fields=["uploadedEver"])["torrents"]
        assert stats["uploadedEver"] > 0
    assert (tmp_path / "transmission" / "config" / "settings.json").read_text().count('"encryption": 2') == 1
    assert_same_tree(payload, tmp_path / "get" / payload.name)
