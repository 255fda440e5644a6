"""Datagrams in batches: Linux's recvmmsg(2) and sendmmsg(2), called through ctypes.

One ``receive`` is one system call that takes up to ``capacity`` waiting datagrams, with
their source addresses, into buffers allocated once; ``send`` copies replies into a send
buffer and hands them all to the kernel in one more call. A busy UDP server then
pays two system calls and one Python callback per batch instead of two system calls and
a callback (plus the event loop's bookkeeping) per datagram.

The socket must be non-blocking: both calls pass ``MSG_DONTWAIT`` and an empty queue is
an empty batch, not a wait. Addresses travel as raw ``sockaddr`` bytes (``SOCKADDR_BYTES``
long, big enough for ``sockaddr_in6``): hashable, so a caller can cache what it derives
from one, and copied back unchanged as a reply's destination. ``decode_sockaddr`` gives
the tuple Python's socket module would.

Linux with glibc only (the ``mmsghdr`` layout is glibc's); elsewhere ``AVAILABLE`` is
False and callers use ordinary datagram endpoints.
"""

from __future__ import annotations

import array
import ctypes
import errno
import itertools
import os
import socket
import struct
import sys
from typing import Any

# sockaddr_in6, the larger of the two families served; an IPv4 source uses the first 16.
SOCKADDR_BYTES = 28
# Datagrams per system call: enough to empty a busy socket's queue in a few calls, few
# enough that one wake-up does not keep the event loop from its other work for long.
DEFAULT_CAPACITY = 64
# Replies sent by one sendmmsg are copied into this buffer end to end; more than fit go
# in several calls. A reply larger than the whole buffer is our caller's bug.
DEFAULT_SEND_BUFFER_BYTES = 1 << 16

_MSG_DONTWAIT = 0x40
_RETRY_LATER = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint))


_HEADER_BYTES = ctypes.sizeof(_MMsgHdr)
_IOVEC_BYTES = ctypes.sizeof(_IoVec)
_LENGTH_OFFSET = _MMsgHdr.msg_len.offset


def _functions() -> tuple[Any, Any] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # PyDLL keeps the GIL across the call: the calls never block (MSG_DONTWAIT), and
        # releasing and taking the GIL again costs more than they do.
        libc = ctypes.PyDLL(None, use_errno=True)
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
    recvmmsg.restype = ctypes.c_int
    sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    sendmmsg.restype = ctypes.c_int
    return recvmmsg, sendmmsg


_FUNCTIONS = _functions()
# The iovecs are written as pairs of 64-bit words, and 64 bytes is glibc's mmsghdr on
# 64-bit Linux.
AVAILABLE = _FUNCTIONS is not None and _HEADER_BYTES == 64 and _IOVEC_BYTES == 16


def _address_of(buffer: bytearray) -> int:
    return ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))


def decode_sockaddr(name: bytes) -> tuple[Any, ...] | None:
    """The address tuple Python's socket module gives for a raw ``sockaddr``:
    ``(host, port)`` for IPv4, ``(host, port, flowinfo, scope_id)`` for IPv6 (an IPv4
    client of a dual-stack socket is ``::ffff:a.b.c.d``); None for any other family."""
    family = int.from_bytes(name[:2], sys.byteorder)
    port = int.from_bytes(name[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, name[4:8]), port
    if family == socket.AF_INET6 and len(name) >= SOCKADDR_BYTES:
        flowinfo = int.from_bytes(name[4:8], "big")
        scope_id = int.from_bytes(name[24:28], sys.byteorder)
        return socket.inet_ntop(socket.AF_INET6, name[8:24]), port, flowinfo, scope_id
    return None


class DatagramBatch:
    """recvmmsg and sendmmsg on one non-blocking datagram socket, with buffers made once.

    ``max_datagram_bytes``: the largest datagram worth reading whole. Each receive slot
    holds one byte more, so a longer datagram shows as longer than the limit (cut to the
    slot) and its reader can refuse it without knowing its true size.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        max_datagram_bytes: int,
        capacity: int = DEFAULT_CAPACITY,
        send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES,
    ) -> None:
        if _FUNCTIONS is None or not AVAILABLE:
            raise OSError(errno.ENOSYS, "recvmmsg and sendmmsg need Linux with glibc")
        if sock.getblocking():
            raise ValueError("the socket must be non-blocking")
        self._recvmmsg, self._sendmmsg = _FUNCTIONS
        self.sock = sock
        self._fd = sock.fileno()
        self.capacity = capacity
        self._slot_bytes = slot = max_datagram_bytes + 1
        namelen = SOCKADDR_BYTES if sock.family == socket.AF_INET6 else 16

        # Receiving: capacity headers, each with one iovec onto its slot and its own name.
        self._data = bytearray(capacity * slot)
        self._data_view = memoryview(self._data)
        self._names = bytearray(capacity * SOCKADDR_BYTES)
        self._iovecs = bytearray(capacity * _IOVEC_BYTES)
        self._headers = bytearray(capacity * _HEADER_BYTES)
        data_at, names_at, iovecs_at = _address_of(self._data), _address_of(self._names), _address_of(self._iovecs)
        headers = (_MMsgHdr * capacity).from_buffer(self._headers)
        iovecs = (_IoVec * capacity).from_buffer(self._iovecs)
        for index in range(capacity):
            iovecs[index].iov_base = data_at + index * slot
            iovecs[index].iov_len = slot
            header = headers[index].msg_hdr
            header.msg_name = names_at + index * SOCKADDR_BYTES
            header.msg_namelen = SOCKADDR_BYTES
            header.msg_iov = iovecs_at + index * _IOVEC_BYTES
            header.msg_iovlen = 1
        del headers, iovecs  # the headers hold the addresses now; the buffers are pinned below
        # The kernel rewrites each used header's name length, flags and message length:
        # they are restored from this copy before every call.
        self._pristine = bytes(self._headers)
        self._headers_at = _address_of(self._headers)
        one_length = f"{_LENGTH_OFFSET}xI{_HEADER_BYTES - _LENGTH_OFFSET - 4}x"
        self._lengths = struct.Struct("@" + one_length * capacity)

        # Sending: capacity headers, each with one iovec (set per reply) and its own name.
        self._send_data = bytearray(max(send_buffer_bytes, slot))
        self._send_names = bytearray(capacity * SOCKADDR_BYTES)
        self._send_iovecs = bytearray(capacity * _IOVEC_BYTES)
        self._send_headers = bytearray(capacity * _HEADER_BYTES)
        self._send_data_at = _address_of(self._send_data)
        send_names_at, send_iovecs_at = _address_of(self._send_names), _address_of(self._send_iovecs)
        send_headers = (_MMsgHdr * capacity).from_buffer(self._send_headers)
        for index in range(capacity):
            header = send_headers[index].msg_hdr
            header.msg_name = send_names_at + index * SOCKADDR_BYTES
            header.msg_namelen = namelen
            header.msg_iov = send_iovecs_at + index * _IOVEC_BYTES
            header.msg_iovlen = 1
        del send_headers
        self._send_headers_at = _address_of(self._send_headers)
        # The headers hold these buffers' addresses. Exported, a buffer cannot be resized
        # (moved) by a slice assignment of the wrong length: that raises BufferError.
        self._pins = [memoryview(buffer) for buffer in (self._names, self._iovecs, self._headers)]
        self._pins += [memoryview(buffer) for buffer in (self._send_data, self._send_names, self._send_iovecs)]
        self._pins.append(memoryview(self._send_headers))
        # iov_base and iov_len of every send iovec, as 64-bit words.
        self._send_iovec_words = memoryview(self._send_iovecs).cast("Q")

    def receive(self) -> list[tuple[bytes, bytes]]:
        """The waiting datagrams, up to ``capacity``, as (raw sockaddr, payload) pairs;
        empty when none wait. Raises ``OSError`` for a socket error."""
        self._headers[:] = self._pristine
        count: int = self._recvmmsg(self._fd, self._headers_at, self.capacity, _MSG_DONTWAIT, None)
        if count <= 0:
            if count < 0:
                code = ctypes.get_errno()
                if code not in _RETRY_LATER:
                    raise OSError(code, os.strerror(code))
            return []
        lengths = self._lengths.unpack_from(self._headers)
        names = bytes(self._names)
        view = self._data_view
        slot = self._slot_bytes
        return [
            (names[at : at + SOCKADDR_BYTES], bytes(view[index * slot : index * slot + lengths[index]]))
            for index, at in zip(range(count), range(0, count * SOCKADDR_BYTES, SOCKADDR_BYTES), strict=True)
        ]

    def send(self, names: list[bytes], payloads: list[bytes]) -> int:
        """Send ``payloads[i]`` to the raw sockaddr ``names[i]`` (as ``receive`` gave it),
        in one system call when they fit the send buffer and ``capacity``. Returns how many
        were dropped, as a datagram may be: all that were left when the kernel's send buffer
        was full, and each one whose destination the kernel refused."""
        count = len(payloads)
        if count == 0:
            return 0
        # Per reply the work below is C loops over lists, no Python statement per reply.
        lengths = array.array("Q", map(len, payloads))
        total = sum(lengths)
        if count > self.capacity or total > len(self._send_data):
            if count == 1:
                raise ValueError(f"a {total}-byte reply does not fit the {len(self._send_data)}-byte send buffer")
            half = count // 2
            return self.send(names[:half], payloads[:half]) + self.send(names[half:], payloads[half:])
        self._send_data[:total] = b"".join(payloads)
        joined_names = b"".join(names)
        if len(joined_names) != count * SOCKADDR_BYTES:
            raise ValueError(f"a sockaddr here is {SOCKADDR_BYTES} bytes")
        self._send_names[: len(joined_names)] = joined_names
        bases = array.array("Q", itertools.accumulate(lengths, initial=self._send_data_at))
        bases.pop()
        words = self._send_iovec_words
        words[0 : 2 * count : 2] = bases
        words[1 : 2 * count : 2] = lengths
        return self._send_queued(count)

    def _send_queued(self, queued: int) -> int:
        sent = dropped = 0
        while sent < queued:
            count: int = self._sendmmsg(
                self._fd, self._send_headers_at + sent * _HEADER_BYTES, queued - sent, _MSG_DONTWAIT
            )
            if count > 0:
                sent += count
                continue
            if ctypes.get_errno() in _RETRY_LATER:
                return dropped + queued - sent
            # The first reply left was refused (an unreachable or forbidden destination).
            sent += 1
            dropped += 1
        return dropped
