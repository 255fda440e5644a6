"""The peer engine's decisions: piece picking, choking, one torrent's swarm. No I/O."""
