"""Every frame that reaches one interface, read with a raw packet socket (AF_PACKET), and a
plain description of where each was going: enough to prove what a process sent and to
whom, without tcpdump.

Open the capture from inside the namespace that holds the interface (its socket stays
there); frames the capturing namespace sends itself are left out.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
from dataclasses import dataclass

ETH_P_ALL = 0x0003
ETH_HEADER_BYTES = 14
ETHERTYPE_IPV4, ETHERTYPE_ARP, ETHERTYPE_IPV6 = 0x0800, 0x0806, 0x86DD
PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 2: "igmp", 58: "icmpv6", 0: "ipv6 hop-by-hop"}
# What the kernel sends on its own when a link comes up or a group is joined: neighbour
# discovery and MLD (ICMPv6, hop-by-hop), IGMP. A process's own packets are UDP or TCP (a
# multicast send included, which is what a discovery protocol would leak).
KERNEL_HOUSEKEEPING = frozenset({"icmpv6", "ipv6 hop-by-hop", "igmp"})
MAX_FRAME_BYTES = 65_536
MAX_FRAMES = 10_000  # a capture that fills up has found stray traffic already


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str  # "udp", "tcp", "arp", "icmpv6", ...
    destination: str  # the address it was sent to (an ARP request: the address asked for)
    port: int | None  # UDP or TCP destination port
    payload: bytes  # what follows the IP and UDP headers (for DNS queries, the query)

    def __str__(self) -> str:
        return f"{self.kind} to {self.destination}" + (f":{self.port}" if self.port is not None else "")


class Capture:
    """Frames arriving on ``interface`` from the moment this is made."""

    def __init__(self, interface: str) -> None:
        self._socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._socket.bind((interface, 0))
        self._socket.setblocking(False)
        self.frames: list[Frame] = []

    def read(self) -> list[Frame]:
        """The frames received since the last read (all kept in ``frames`` too), but for
        the kernel's own housekeeping."""
        fresh: list[Frame] = []
        while len(self.frames) + len(fresh) < MAX_FRAMES:
            try:
                data, address = self._socket.recvfrom(MAX_FRAME_BYTES)
            except BlockingIOError:
                break
            if address[2] == socket.PACKET_OUTGOING:
                continue
            frame = describe(data)
            if frame.kind not in KERNEL_HOUSEKEEPING:
                fresh.append(frame)
        self.frames += fresh
        return fresh

    def wait_readable(self, timeout_s: float) -> None:
        """Return when a frame is waiting or ``timeout_s`` has passed."""
        select.select([self._socket], [], [], timeout_s)

    def close(self) -> None:
        self._socket.close()


def describe(data: bytes) -> Frame:
    ethertype = struct.unpack_from("!H", data, 12)[0]
    packet = data[ETH_HEADER_BYTES:]
    if ethertype == ETHERTYPE_ARP and len(packet) >= 28:
        return Frame("arp", str(ipaddress.IPv4Address(packet[24:28])), None, b"")
    if ethertype == ETHERTYPE_IPV4 and len(packet) >= 20:
        header_bytes = (packet[0] & 0x0F) * 4
        protocol, v4 = packet[9], ipaddress.IPv4Address(packet[16:20])
        return _transport(PROTOCOLS.get(protocol, f"ip proto {protocol}"), str(v4), packet[header_bytes:])
    if ethertype == ETHERTYPE_IPV6 and len(packet) >= 40:
        protocol, v6 = packet[6], ipaddress.IPv6Address(packet[24:40])
        return _transport(PROTOCOLS.get(protocol, f"ipv6 next header {protocol}"), str(v6), packet[40:])
    return Frame(f"ethertype {ethertype:#06x}", "?", None, b"")


def _transport(kind: str, destination: str, segment: bytes) -> Frame:
    if kind in ("udp", "tcp") and len(segment) >= 4:
        port = struct.unpack_from("!H", segment, 2)[0]
        return Frame(kind, destination, port, segment[8:] if kind == "udp" else b"")
    return Frame(kind, destination, None, b"")


def dns_question(payload: bytes) -> str | None:
    """The name a DNS query asks about, or None if ``payload`` is not one."""
    labels, offset = [], 12
    try:
        while payload[offset]:
            length = payload[offset]
            labels.append(payload[offset + 1 : offset + 1 + length].decode("ascii"))
            offset += 1 + length
    except (IndexError, UnicodeDecodeError):
        return None
    return ".".join(labels) or None
