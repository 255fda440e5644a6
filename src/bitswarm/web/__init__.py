"""What every bitswarm HTTP app shares: the app factory and its security middleware."""
