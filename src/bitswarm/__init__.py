"""bitswarm: a BitTorrent toolkit (client, tracker and index)."""

__version__ = "0.1.0"
