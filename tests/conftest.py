"""Fixtures shared by every test folder."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from webseed_nginx import nginx_binary


@pytest.fixture(autouse=True)
def private_user_folders(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run by tests keep per-user state (the DHT routing table) in a temporary
    folder, never in the real home, and read a client config with local service discovery
    and the DHT's default bootstrap routers and port mapping off: LSD's multicast and the
    routers' DNS look-ups would leave loopback, and port mapping would send SSDP multicast
    and PCP/NAT-PMP to the machine's real gateway. (A test that wants them, in network
    namespaces it made, passes --config with its own file.)"""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    config = tmp_path_factory.mktemp("config")
    (config / "bitswarm").mkdir()
    (config / "bitswarm" / "client.toml").write_text("lsd = false\ndht_bootstrap = []\nport_mapping = false\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))


@pytest.fixture
def sample_folder(tmp_path: Path) -> Path:
    """A folder with files of awkward sizes: across pieces, smaller than a block, empty."""
    rng = random.Random(7)
    root = tmp_path / "content"
    sizes = {"a.bin": 100_000, "b/c.bin": 16_384, "b/d.txt": 5, "empty": 0, "e/f/g.bin": 50_001}
    for relative, size in sizes.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(size))
    return root


@pytest.fixture
def nginx_path() -> str:
    """Debian's nginx, which the web seed interop tests serve files with."""
    found = nginx_binary()
    if found is None:
        pytest.fail("nginx is not installed (Debian package: nginx-light); interop tests need it", pytrace=False)
    return found
