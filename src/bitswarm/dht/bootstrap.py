"""Where a DHT node with nothing saved joins the network: the well-known routers.

These are the nodes libtorrent, uTorrent and Transmission ship. They are asked only while
the routing table is empty (the saved nodes come first) and their names are resolved anew
each time, so a router that moved is found again and a name that does not resolve is one
fewer way in, not an error. Closed networks and tests turn them off: `dht_bootstrap = []`
in the config file, or `--no-dht-bootstrap`.
"""

from __future__ import annotations

DEFAULT_BOOTSTRAP = (
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
)
