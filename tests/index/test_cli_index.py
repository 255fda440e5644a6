"""``bitswarm index`` (serving), ``add``, ``import`` and ``account add``, run as the real command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import bitswarm as bitswarm_package
from bitswarm.index import EntryState, open_database
from bitswarm.metainfo import Torrent, TorrentVersion
from index.support import make_torrent, run


def command_and_environment(*args: str | Path) -> tuple[list[str], dict[str, str]]:
    # The command from the sources under test, whatever the working folder.
    sources = str(Path(bitswarm_package.__file__).resolve().parents[1])
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [sources, os.environ.get("PYTHONPATH")]))}
    return [sys.executable, "-m", "bitswarm", *map(str, args)], environment


def bitswarm(*args: str | Path, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command, environment = command_and_environment(*args)
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=environment, check=False, input=stdin
    )  # fmt: skip


def test_an_operator_account_is_created_and_the_index_serves_until_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    created = bitswarm("index", "account", "add", "admin", "--role", "operator", "--password-stdin", "--db", url,
                       cwd=tmp_path, stdin="a long enough password\n")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert created.stdout.split("\t")[1:] == ["admin", "operator\n"]
    command, environment = command_and_environment("index", "--bind", "127.0.0.1:0", "--db", url)
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              env=environment)  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("bitswarm index: http://127.0.0.1:"), line
        site = line.split(": ", 1)[1].strip()
        with urllib.request.urlopen(site, timeout=10) as response:  # noqa: S310 - our own loopback server
            assert response.status == 200
            assert "bitswarm index" in response.read().decode()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert "Traceback" not in (server.stderr.read() if server.stderr else "")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def listed(url: str) -> list[tuple[str, str, str | None]]:
    async def scenario() -> list[tuple[str, str, str | None]]:
        async with await open_database(url) as db:
            entries = await db.entries.list_newest(limit=100)
            return sorted((entry.title, entry.state.value, entry.category) for entry in entries)

    return run(scenario())


def test_add_torrents_and_magnets(index_url: str, tmp_path: Path) -> None:
    torrent = tmp_path / "film.torrent"
    torrent.write_bytes(make_torrent(tmp_path, "Film", {"film.mkv": b"f" * 5000}, TorrentVersion.V1))
    link = "magnet:?xt=urn:btih:" + "c" * 40 + "&dn=Linked"
    added = bitswarm("index", "add", torrent, link, "--db", index_url, "--category", "Movies", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert added.stderr == ""
    assert [line.split("\t")[1] for line in added.stdout.splitlines()] == ["Film", "Linked (waiting for metadata)"]
    assert listed(index_url) == [
        ("Film", EntryState.READY.value, "movies"),
        ("Linked", EntryState.WAITING_METADATA.value, "movies"),
    ]

    again = bitswarm("index", "--db", index_url, "add", torrent, "--title", "Other", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"bitswarm: {torrent}: already listed as entry 1",
        "bitswarm: index add: 1 of 1 not added",
    ]


def test_add_uses_a_database_in_the_working_folder_by_default(tmp_path: Path) -> None:
    torrent = tmp_path / "one.torrent"
    torrent.write_bytes(make_torrent(tmp_path, "One", {"": b"1" * 100}, TorrentVersion.V2))
    added = bitswarm("index", "add", torrent, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "bitswarm-index.db").is_file()
    assert listed(f"sqlite:///{tmp_path / 'bitswarm-index.db'}") == [("One", "ready", None)]


def test_bad_input_is_one_line_and_status_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    cases: list[tuple[tuple[str | Path, ...], str]] = [
        (("index", "add", tmp_path / "missing.torrent", "--db", url), "missing.torrent: No such file or directory"),
        (("index", "add", "magnet:?dn=nothing", "--db", url), "bitswarm: magnet: xt: no urn:btih"),
        (("index", "add", "magnet:?xt=urn:btih:" + "a" * 40, "--db", "mysql://x@y/z"), "mysql: unsupported"),
        (("index", "add", "magnet:?xt=urn:btih:" + "a" * 40, "--category", "a b", "--db", url), "category:"),
        (("index", "add", "a", "b", "--title", "T", "--db", url), "--title: give one"),
        (("index", "import", tmp_path / "nowhere", "--db", url), "not a folder"),
        (("index", "--bind", "nonsense"), "--bind: nonsense: not HOST:PORT"),
        (("index", "--config", tmp_path / "missing.toml"), "missing.toml: No such file or directory"),
        (("index", "--db", "mysql://x@y/z", "--bind", "127.0.0.1:0"), "mysql: unsupported"),
    ]
    for args, text in cases:
        result = bitswarm(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert text in result.stderr.splitlines()[0], (args, result.stderr)


def test_import_counts_added_duplicate_and_invalid_files(index_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "torrents"
    (folder / "sub").mkdir(parents=True)
    hybrid = make_torrent(tmp_path, "Hybrid", {"a.bin": b"a" * 40_000}, TorrentVersion.HYBRID)
    (folder / "hybrid.torrent").write_bytes(hybrid)
    (folder / "sub" / "v1.torrent").write_bytes(make_torrent(tmp_path, "Version One", {"": b"1" * 999}))
    (folder / "sub" / "copy.torrent").write_bytes(hybrid)
    (folder / "garbage.torrent").write_bytes(b"<html>404</html>")
    (folder / "empty.torrent").write_bytes(b"")
    (folder / "notes.txt").write_text("not a torrent, not looked at")
    imported = bitswarm("index", "import", folder, "--db", index_url, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.splitlines() == [f"{folder}: 2 added, 1 duplicates, 2 invalid of 5 .torrent files"]
    errors = imported.stderr.splitlines()
    assert len(errors) == 3
    assert any("copy.torrent: already listed as entry" in line for line in errors)
    assert any("garbage.torrent: bencode:" in line for line in errors)
    assert any("empty.torrent: bencode:" in line for line in errors)
    assert all(line.startswith("bitswarm: ") for line in errors)
    assert listed(index_url) == [("Hybrid", "ready", None), ("Version One", "ready", None)]
    assert Torrent.decode(hybrid).has_v2
