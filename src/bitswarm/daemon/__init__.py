"""`bitswarm daemon`: persistent session state, queue, Transmission RPC."""
