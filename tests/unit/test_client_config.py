"""The settings file of ``bitswarm get`` and ``seed``: every key optional, typos and wrong types refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bitswarm.client_config import ClientConfig, load_client_config
from bitswarm.create import CreateOptions, create
from bitswarm.errors import UsageError


def test_an_empty_file_gives_the_defaults_with_dht_and_lsd_on_and_the_well_known_routers() -> None:
    assert load_client_config("") == ClientConfig()
    assert ClientConfig().dht
    assert ClientConfig().lsd
    assert ClientConfig().dht_bootstrap == (
        "router.bittorrent.com:6881",
        "router.utorrent.com:6881",
        "dht.transmissionbt.com:6881",
        "dht.libtorrent.org:25401",
    )
    assert ClientConfig().port_mapping


def test_an_empty_bootstrap_list_turns_the_routers_off() -> None:
    assert load_client_config("dht_bootstrap = []").dht_bootstrap == ()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), ("router.bittorrent.com:6881",)),
        (("10.0.0.7:6881",), ("10.0.0.7:6881",)),
    ],
)
def test_the_command_line_replaces_the_routers_and_no_dht_bootstrap_empties_them(
    options: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    from bitswarm.cli import discovery_settings

    config = ClientConfig(dht_bootstrap=("router.bittorrent.com:6881",))
    assert discovery_settings(config, False, options, False, None, False, None)["dht_bootstrap"] == expected
    assert discovery_settings(config, False, (), True, None, False, None)["dht_bootstrap"] == ()


def test_no_dht_bootstrap_with_a_bootstrap_node_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"x" * 1000)
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(create(tmp_path / "x.bin", CreateOptions()))
    done = subprocess.run(
        [sys.executable, "-m", "bitswarm", "get", str(torrent), "--no-dht-bootstrap", "--dht-bootstrap", "10.0.0.5:1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "bitswarm: --no-dht-bootstrap and --dht-bootstrap: choose one"


def test_every_key_is_read() -> None:
    text = """
dht = false
dht-bootstrap = ["10.0.0.5:6881", "[fd00::5]:6881"]
dht_state = "~/dht.dat"
lsd = false
lsd_interface = "eth0"
pex = false
port_mapping = false
"""
    assert load_client_config(text) == ClientConfig(
        dht=False,
        dht_bootstrap=("10.0.0.5:6881", "[fd00::5]:6881"),
        dht_state="~/dht.dat",
        lsd=False,
        lsd_interface="eth0",
        pex=False,
        port_mapping=False,
    )
    assert load_client_config('dht_bootstrap = "10.0.0.5:6881"').dht_bootstrap == ("10.0.0.5:6881",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dth = true", "client.toml: unknown setting 'dth'"),
        ('dht = "yes"', "client.toml: dht must be true or false"),
        ("port_mapping = 1", "client.toml: port_mapping must be true or false"),
        ("dht_bootstrap = [1]", "client.toml: dht_bootstrap must be HOST:PORT or a list of them"),
        ('lsd_interface = ""', "client.toml: lsd_interface must be a non-empty string"),
        ("dht = ", "client.toml: "),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        load_client_config(text, source="client.toml")
    assert str(raised.value).startswith(message)


def test_get_with_a_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "client.toml"
    config.write_text('dht_bootstrap = ["10.0.0.5:port"]\n')
    (tmp_path / "x.bin").write_bytes(b"x" * 1000)
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(create(tmp_path / "x.bin", CreateOptions()))
    done = subprocess.run(
        [sys.executable, "-m", "bitswarm", "get", str(torrent), "--config", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == f"bitswarm: {config}: dht_bootstrap: 10.0.0.5:port: port is not a number"
