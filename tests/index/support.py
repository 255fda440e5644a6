"""Helpers of the index tests: torrents made by bitswarm's own creator, and scenarios run."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bitswarm.create import CreateOptions, create
from bitswarm.metainfo import TorrentVersion

_T = TypeVar("_T")


def run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run one test scenario on a fresh event loop."""
    return asyncio.run(coroutine)


def make_torrent(
    folder: Path, name: str, files: dict[str, bytes], version: TorrentVersion = TorrentVersion.HYBRID, **options: Any
) -> bytes:
    """The .torrent bytes of a folder ``name`` holding ``files`` (path -> content), made by
    bitswarm's own creator; one file without a folder when ``files`` has the key ''."""
    root = folder / "content" / name
    if list(files) == [""]:
        root.parent.mkdir(parents=True, exist_ok=True)
        root.write_bytes(files[""])
    else:
        for relative, content in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(content)
    data = create(root, CreateOptions(version=version, **options))
    shutil.rmtree(folder / "content")
    return data
