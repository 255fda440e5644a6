"""Content on disk: reading pieces of a torrent's files and checking them."""
