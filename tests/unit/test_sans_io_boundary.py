"""Everything outside the I/O layers stays sans-IO: no event loop, sockets, clocks or global chance."""

from __future__ import annotations

import ast
from pathlib import Path

import bitswarm

PACKAGE = Path(bitswarm.__file__).parent
IO_LAYERS = {"net", "web", "cli.py", "demo.py", "__main__.py"}
FORBIDDEN = {"asyncio", "socket", "selectors", "time", "random", "ssl", "urllib.request", "http.client"}


def test_cores_import_no_io_clock_or_randomness() -> None:
    offenders = []
    for module in PACKAGE.rglob("*.py"):
        relative = module.relative_to(PACKAGE)
        if relative.parts[0] in IO_LAYERS:
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{relative}: {name}" for name in names if name in FORBIDDEN]
    assert offenders == []
    assert any(PACKAGE.rglob("metainfo.py")), "the check must see the package"
