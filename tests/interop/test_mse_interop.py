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
- transmission-daemon with encryption required downloads from `bitswarm seed --encryption
  require`. Transmission 3.00 does not dial 127.x peers a tracker names, so these two run
  in network namespaces of their own (netns.py), as in test_mixed_swarm_interop.py; the
  seed's host runs the tracker too. Transmission's copy may lack the empty file
  (transmission#417).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitswarm.metainfo import Torrent

from .netns import open_test_network
from .payload import PIECE_LENGTH, write_payload
from .test_mixed_swarm_interop import TransmissionWatch
from .test_mixed_swarm_interop import assert_same_tree as assert_same_tree_but_empty_files
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
from .trackers import TrackerUrls, http_scrape, run_bitswarm_tracker, run_transmission, stop_process, wait_for

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
PEER_PORT = 6881  # each peer has a namespace of its own
# Transmission declares interest only at its next 10-second choking round.
TRANSMISSION_TIMEOUT_S = 30.0
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


def test_transmission_requiring_encryption_downloads_from_bitswarm(tmp_path: Path) -> None:
    payload = write_payload(tmp_path / "seed", seed=506)
    torrent = tmp_path / "payload.torrent"
    folder = tmp_path / "transmission-get"
    folder.mkdir()
    with (
        open_test_network(("seed", "transmission")) as network,
        run_bitswarm_tracker(
            tmp_path / "tracker.log", host=network["seed"].address, wrap=lambda argv: network.argv("seed", argv)
        ) as tracker,
    ):
        argv = [*BITSWARM, "create", str(payload), "-o", str(torrent), "--v1"]  # Transmission 3.00 reads v1 only
        argv += ["--piece-length", str(PIECE_LENGTH), "-t", tracker.announce]
        created = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert created.returncode == 0, created.stderr
        info_hash = Torrent.decode(torrent.read_bytes()).info_hash_v1
        assert info_hash is not None

        def seeders() -> int:
            reply = network.call("seed", lambda: http_scrape(tracker.scrape, [info_hash]))
            return int(reply[b"files"].get(info_hash, {b"complete": 0})[b"complete"])

        seed_argv = [*BITSWARM, "seed", str(torrent), str(payload.parent), "--port", str(PEER_PORT), "--json"]
        seed = subprocess.Popen(
            network.argv("seed", [*seed_argv, *BITSWARM_REQUIRE]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: seeders() == 1, "the bitswarm seed announcing", START_TIMEOUT_S)
            with run_transmission(
                tmp_path / "transmission",
                address=network["transmission"].address,
                wrap=lambda argv: network.argv("transmission", argv),
                call=lambda function: network.call("transmission", function),
            ) as transmission:
                transmission.rpc("session-set", encryption="required")
                transmission.rpc("torrent-add", filename=str(torrent), **{"download-dir": str(folder)})
                watch = TransmissionWatch(transmission)
                encrypted: set[tuple[str, int, bool]] = set()

                def finished() -> bool:
                    done = watch.finished()
                    peers = watch.state["peers"]
                    encrypted.update((peer["address"], peer["port"], peer["isEncrypted"]) for peer in peers)
                    return done

                wait_for(finished, "transmission downloading the payload", TRANSMISSION_TIMEOUT_S)
                # It dialled the seed the tracker named, over RC4 (Transmission's isEncrypted).
                assert (network["seed"].address, PEER_PORT, False) in watch.peers, watch.peers
                assert (network["seed"].address, PEER_PORT, True) in encrypted, encrypted
                assert not any(not is_encrypted for _, _, is_encrypted in encrypted), encrypted
                assert watch.state["downloadedEver"] > 0
        finally:
            status = stop_process(seed, "bitswarm seed")
            _, seed_stderr = seed.communicate()
        assert status == 0, seed_stderr
    assert_same_tree_but_empty_files(payload, folder / payload.name, creates_empty_files=False)
