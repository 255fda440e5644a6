"""Streaming: the verified-bytes file reader and the HTTP range server."""
