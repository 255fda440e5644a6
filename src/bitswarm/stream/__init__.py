"""Streaming: the verified-bytes file reader and the HTTP range server."""

from __future__ import annotations

import importlib
import threading

# The HTTP server's modules, aiohttp's few hundred milliseconds of imports among them.
SERVER_MODULE = "bitswarm.stream.server"


def warm_up_server_imports() -> None:
    """Import the HTTP server's modules in a thread, so that the session starts and the
    first peers answer meanwhile (mostly a wait on the network) rather than after them."""
    threading.Thread(target=importlib.import_module, args=(SERVER_MODULE,), daemon=True).start()
