"""Issue 15 in network namespaces: a first `bitswarm get` of a bare info-hash joins the DHT
through the well-known bootstrap names (resolved by a real DNS server, dnsmasq), and the
settings the tests and the demo run with send nothing beyond loopback and the test's own
namespaces, proven by capturing every frame that leaves.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import Torrent, TorrentVersion

from .capture import Capture, dns_question
from .home_network import add_default_route, disable_ipv6, open_dht_seed, open_internet, use_dns
from .netns import open_test_network

pytestmark = pytest.mark.interop

BITSWARM = [sys.executable, "-m", "bitswarm"]
DEADLINE_S = 90.0
BOOTSTRAP_NAMES = {"router.bittorrent.com", "router.utorrent.com", "dht.transmissionbt.com", "dht.libtorrent.org"}


def make_torrent(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "seed" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(random.Random(15).randbytes(700_000))
    torrent = tmp_path / "data.torrent"
    torrent.write_bytes(create(source, CreateOptions(version=TorrentVersion.HYBRID, piece_length=64 * 1024)))
    return torrent, source


def test_a_first_get_of_a_bare_info_hash_joins_the_dht_through_the_bootstrap_names(tmp_path: Path) -> None:
    torrent_path, source = make_torrent(tmp_path)
    torrent = Torrent.decode(torrent_path.read_bytes())
    link = f"magnet:?xt=urn:btih:{(torrent.info_hash_v1 or b'').hex()}"
    # The defaults but for LSD; nothing saved (a fresh state folder): only the names lead in.
    config = tmp_path / "client.toml"
    config.write_text("lsd = false\n")
    state = tmp_path / "state"
    with (
        open_test_network(["internet", "internet2", "seed", "home"]) as network,
        open_internet(network, tmp_path) as internet,
        use_dns(network, "home", internet.dns),
        open_dht_seed(network, internet, torrent_path, source.parent, tmp_path / "seed.dat"),
    ):
        got = subprocess.run(
            network.argv("home", ["env", f"XDG_STATE_HOME={state}", *BITSWARM, "get", link,
                                  "-o", str(tmp_path / "get"), "--port", "6881", "--no-seed",
                                  "--config", str(config), "--json"]),
            capture_output=True, text=True, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
        asked = internet.dns_log.read_text()
    assert got.returncode == 0, got.stderr
    events = [json.loads(line)["event"] for line in got.stdout.splitlines()]
    assert "metadata" in events
    assert "finished" in events
    assert (tmp_path / "get" / "data.bin").read_bytes() == source.read_bytes()
    # Each name was looked up through the DNS server, the one that does not resolve too.
    for name in BOOTSTRAP_NAMES:
        assert f"query[A] {name} from" in asked, asked


def test_the_tests_settings_and_the_demo_send_nothing_beyond_their_namespace(tmp_path: Path) -> None:
    """A session with the defaults in a namespace with no route out sends nothing; what the
    tests run with (tests/conftest.py's client.toml) and `bitswarm demo` send no packet out
    of an otherwise empty namespace whose default route leads to a capture; the same command
    with the defaults is seen looking up the bootstrap names there, which shows the capture
    would see stray traffic."""
    torrent_path, _ = make_torrent(tmp_path)
    torrent = Torrent.decode(torrent_path.read_bytes())
    link = f"magnet:?xt=urn:btih:{(torrent.info_hash_v1 or b'').hex()}"
    tests_config = tmp_path / "tests.toml"
    # The file every test gets (tests/conftest.py).
    tests_config.write_text((Path(os.environ["XDG_CONFIG_HOME"]) / "bitswarm" / "client.toml").read_text())
    defaults = tmp_path / "defaults.toml"
    defaults.write_text("")
    with open_test_network(["home", "world"]) as network, use_dns(network, "home", "192.0.2.53"):
        for label in ("home", "world"):
            disable_ipv6(network, label)
        capture = network.call("world", lambda: Capture("eth0"))
        try:
            # The defaults themselves, in a namespace with no route out: every default that
            # reaches out (DNS, SSDP, PCP/NAT-PMP, LSD) finds no way, and none costs more than
            # a line. LSD's line comes once the session has tried them all.
            bare = subprocess.Popen(
                network.argv("home", [*BITSWARM, "get", link, "-o", str(tmp_path / "bare"), "--no-seed",
                                      "--config", str(defaults)]),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert bare.stderr is not None
            said = [bare.stderr.readline() for _ in range(2)]
            while not any("local service discovery off" in line for line in said) and said[-1]:
                said.append(bare.stderr.readline())
            bare.terminate()
            bare.communicate(timeout=30)
            assert not any("Traceback" in line for line in said), said
            stray = capture.read()
            assert stray == [], [str(frame) for frame in stray]
            add_default_route(network, "home", network["world"].address)
            quiet = subprocess.Popen(
                network.argv("home", [*BITSWARM, "get", link, "-o", str(tmp_path / "quiet"), "--no-seed",
                                      "--config", str(tests_config), "--json"]),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert quiet.stdout is not None
            assert json.loads(quiet.stdout.readline())["event"] == "fetching"  # DHT up, looking for peers
            quiet.terminate()
            _, quiet_errors = quiet.communicate(timeout=30)
            assert quiet.returncode in (0, 130, -15), quiet_errors
            demo = subprocess.run(
                network.argv("home", [*BITSWARM, "demo"]), capture_output=True, text=True, timeout=120, check=False
            )
            assert demo.returncode == 0, demo.stderr
            stray = capture.read()
            assert stray == [], [str(frame) for frame in stray]
            # The control: the defaults reach out, and the capture sees it.
            loud = subprocess.Popen(
                network.argv("home", [*BITSWARM, "get", link, "-o", str(tmp_path / "loud"), "--no-seed",
                                      "--config", str(defaults), "--json"]),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                asked: set[str] = set()
                deadline = time.monotonic() + DEADLINE_S
                while not asked & BOOTSTRAP_NAMES and time.monotonic() < deadline:
                    for frame in capture.read():
                        if frame.kind == "udp" and frame.port == 53:
                            asked.add(dns_question(frame.payload) or "")
                    if not asked & BOOTSTRAP_NAMES:
                        capture.wait_readable(1.0)
            finally:
                loud.terminate()
                loud.communicate(timeout=30)
        finally:
            network.call("world", capture.close)
    assert asked & BOOTSTRAP_NAMES, [str(frame) for frame in capture.frames]
