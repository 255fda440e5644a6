"""Opening the listening port on the home router, the sans-IO parts.

``pcp`` is the codec of NAT-PMP (RFC 6886) and PCP (RFC 6887) messages; ``lease`` is the
schedule that renews a granted mapping before its lifetime runs out. The asyncio side,
which also speaks UPnP IGD through async-upnp-client, is ``bitswarm.net.portmap``.
"""
