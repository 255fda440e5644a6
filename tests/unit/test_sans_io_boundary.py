"""Everything outside the I/O layers stays sans-IO: no event loop, sockets, clocks or global chance."""

from __future__ import annotations

import ast
from pathlib import Path

import bitswarm

PACKAGE = Path(bitswarm.__file__).parent
IO_LAYERS = {"net", "web", "stream", "index", "daemon", "cli", "demo.py", "__main__.py"}
# The asyncio side of a package whose cores sit beside it (subscriptions: fetching, the
# poll loop and the sinks; the document reader, rules and matching are cores).
IO_MODULES = {"feeds/fetch.py", "feeds/runner.py", "feeds/sinks.py"}
# Cores inside an I/O layer: checked all the same.
CORES_IN_IO_LAYERS = {
    "index/query.py",
    "daemon/state.py",
    "daemon/config.py",
    "daemon/jsonrpc.py",
    "daemon/altspeed.py",
}
FORBIDDEN = {"asyncio", "socket", "selectors", "time", "ssl", "urllib.request", "http.client", "redis"}
# The one place a core may touch a store that waits on a server.
STORE_ADAPTERS = {"tracker/redis_store.py"}


def _offences(module: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module.split(".")[0]]
        found += [name for name in names if name in FORBIDDEN]
        # Chance comes in as a random.Random argument; the module's global functions are off limits.
        is_random = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "random"
        if is_random and node.attr != "Random":  # type: ignore[attr-defined]
            found.append(f"random.{node.attr}")  # type: ignore[attr-defined]
    return found


def test_cores_import_no_io_clock_or_global_randomness() -> None:
    offenders = []
    modules = list(PACKAGE.rglob("*.py"))
    for module in modules:
        relative = module.relative_to(PACKAGE)
        is_io = relative.parts[0] in IO_LAYERS and relative.as_posix() not in CORES_IN_IO_LAYERS
        is_io = is_io or relative.as_posix() in IO_MODULES
        if is_io or relative.as_posix() in STORE_ADAPTERS:
            continue
        offenders += [f"{relative}: {name}" for name in _offences(module)]
    assert offenders == []
    assert any(module.name == "metainfo.py" for module in modules), "the check must see the package"


def test_the_check_catches_a_clock_and_global_chance(tmp_path: Path) -> None:
    sample = tmp_path / "core.py"
    sample.write_text("import time\nimport random\nx = random.random()\nrng: random.Random\n")
    assert _offences(sample) == ["time", "random.random"]
