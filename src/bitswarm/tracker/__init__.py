"""The tracker: protocol cores, swarm state stores, and settings."""
