"""The BitTorrent DHT (BEP 5, 32, 42, 43) as sans-IO cores; ``bitswarm.net.dht`` runs them."""
