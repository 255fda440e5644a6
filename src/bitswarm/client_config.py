"""Settings of ``bitswarm get`` and ``bitswarm seed`` from a TOML file, every key optional.

```toml
dht = true                         # find peers through the DHT (BEP 5)
dht_bootstrap = ["10.0.0.5:6881"]  # nodes to join through while the saved table gives none;
                                   # [] none [the well-known routers, DEFAULT_BOOTSTRAP]
dht_state = "/var/lib/bitswarm/dht.dat"
lsd = true                         # local service discovery (BEP 14)
lsd_interface = "eth0"
pex = true                         # peer exchange (BEP 11)
port_mapping = true                # open the port on the home router (UPnP IGD, NAT-PMP, PCP)
utp = true                         # uTP (BEP 29) on the DHT's UDP port, tried first when dialling
```

The file is ``--config FILE``, else ``$XDG_CONFIG_HOME/bitswarm/client.toml`` (by default
``~/.config/bitswarm/client.toml``) when it exists. The command line wins: ``--no-dht``
turns the DHT off whatever the file says, and ``--dht-bootstrap`` replaces the file's
list (``--no-dht-bootstrap`` empties it). By default the node joins through the routers the
big clients use (``bitswarm.dht.bootstrap``), resolved each time and asked only
while the saved routing table gives no node. Private torrents use none of these (BEP 27).
Unknown keys are errors, so a typo never silently leaves a default in force.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from bitswarm.dht.bootstrap import DEFAULT_BOOTSTRAP
from bitswarm.errors import UsageError

CONFIG_FILE_NAME = "client.toml"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    dht: bool = True
    dht_bootstrap: tuple[str, ...] = DEFAULT_BOOTSTRAP
    # None: the per-user state folder's dht.dat.
    dht_state: str | None = None
    lsd: bool = True
    # None: the interface of the route to the multicast group.
    lsd_interface: str | None = None
    pex: bool = True
    port_mapping: bool = True
    utp: bool = True


_FLAGS = ("dht", "lsd", "pex", "port_mapping", "utp")
_TEXTS = ("dht_state", "lsd_interface")


def load_client_config(text: str, *, source: str = "config") -> ClientConfig:
    """A config from TOML text; raises UsageError naming the file and the bad key."""
    try:
        table: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{source}: {error}") from None
    values: dict[str, Any] = {}
    for key, given in table.items():
        name = key.replace("-", "_")
        value = given
        if name in _FLAGS:
            if not isinstance(value, bool):
                raise UsageError(f"{source}: {key} must be true or false")
        elif name in _TEXTS:
            if not isinstance(value, str) or not value:
                raise UsageError(f"{source}: {key} must be a non-empty string")
        elif name == "dht_bootstrap":
            items = [given] if isinstance(given, str) else given
            if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
                raise UsageError(f"{source}: {key} must be HOST:PORT or a list of them")
            value = tuple(items)
        else:
            raise UsageError(f"{source}: unknown setting {key!r}")
        values[name] = value
    return ClientConfig(**values)
