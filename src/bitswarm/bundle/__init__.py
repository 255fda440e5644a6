"""Encrypted bundles: the format (sans-IO), their files on disk, share links and keys."""
