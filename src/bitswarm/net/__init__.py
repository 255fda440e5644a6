"""The asyncio layer: sockets, servers and timers around the sans-IO cores."""
