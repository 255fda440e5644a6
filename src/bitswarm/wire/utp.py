"""One uTP connection (BEP 29) as a sans-IO core: a reliable byte stream over datagrams.

The socket-level core (``utp_socket.UTPSocket``) decodes datagrams, routes them here by
(address, connection id) and asks each connection for the datagrams it owes. A
connection never sends on its own: ``receive`` only updates state, and
``datagrams_to_send(now)`` builds what is due (new data as the window allows, resends,
the FIN, an ACK), so the ACKs for a burst of datagrams go out as one.

The machine (one ``UTPState``)::

    SYN_SENT      --STATE acking our SYN-->                    CONNECTED
    SYN_RECEIVED  --a packet acking our STATE-->               CONNECTED
    CONNECTED     --close(), send buffer empty: FIN sent-->    FIN_SENT
    FIN_SENT      --FIN acked and the peer's FIN seen, or linger over-->  CLOSED
    any           --RESET, too many timeouts, abort()-->       CLOSED

Connection ids follow BEP 29: the initiator picks ``recv_id``, sends the SYN with it and
sends everything else with ``send_id = recv_id + 1``; the acceptor swaps them. A STATE
carries the next sequence number we will use without consuming it; DATA, FIN and SYN
consume one.

Congestion control is LEDBAT (RFC 6817, as BEP 29 uses it): the peer tells us, in every
packet's ``timestamp_difference``, the one-way delay of our packets plus an unknown
clock offset; the minimum over the last two minutes is the base delay, anything above
it is queueing, and the window (bytes, at least one packet) grows while queueing is
under the 100 ms target and shrinks above it, by at most ``MAX_CWND_INCREASE_BYTES``
per round trip. A loss (three duplicate ACKs, or three packets selectively acked past a
hole) halves the window once per round trip and resends the hole; a timeout (RFC 6298
style: ``rto = srtt + 4 * rttvar``, at least 500 ms, doubled per timeout) shrinks it to
one packet and resends everything in flight.

Hostile input costs the datagram, not the connection: an ACK or selective ACK for a
sequence number we never sent, data beyond the receive window or the reorder buffer, or
a packet from the wrong state is dropped and counted in ``dropped``. Buffers are capped:
``write`` takes no more than the send buffer's room, and the receiver keeps at most its
advertised window.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from dataclasses import dataclass

from bitswarm.errors import UsageError
from bitswarm.wire.utp_packet import (
    SEQ_MASK,
    U32_MASK,
    Packet,
    PacketType,
    encode_sack,
    sack_offsets,
    seq_less,
)

Address = tuple[str, int]

# LEDBAT (RFC 6817, BEP 29): the queueing delay we aim for.
TARGET_DELAY_US = 100_000
# BEP 29's gain: the window grows by at most this many bytes per round trip.
MAX_CWND_INCREASE_BYTES = 3000
# Base delay: the minimum over this many one-minute buckets (BEP 29: two minutes).
BASE_DELAY_BUCKETS = 2
BASE_DELAY_BUCKET_S = 60.0
# The current delay is the minimum of the last few samples, so one late ACK is no signal.
CURRENT_DELAY_SAMPLES = 3
# RFC 6298 as BEP 29 applies it: at least 500 ms, 1 s before any sample.
MIN_RTO_S = 0.5
INITIAL_RTO_S = 1.0
MAX_RTO_S = 30.0
# Consecutive timeouts before the peer is declared gone: 0.5 + 1 + 2 + 4 + 8 + 16 s.
MAX_TIMEOUTS = 6
# A SYN is sent this many times, SYN_TIMEOUT_S apart, before the dial fails (and the
# caller falls back to TCP); kept short because an unanswered SYN is the common case
# for a peer without uTP.
SYN_TIMEOUT_S = 1.0
MAX_SYN_SENDS = 3
# An accepted SYN whose initiator does not follow up is forgotten after this.
HALF_OPEN_TIMEOUT_S = 10.0
# BEP 29: NAT mappings last about 30 s; an idle connection sends an ACK this often.
KEEPALIVE_S = 29.0
# After our FIN is acknowledged, how long we wait for the peer's FIN to acknowledge it.
LINGER_S = 10.0
# Payload sizes: the floor fits any path (an IPv6 minimum MTU of 1280 less the IPv6, UDP
# and uTP headers and a SACK); the ceiling fits Ethernet's 1500 with IPv4 and a SACK.
MIN_PACKET_BYTES = 1180
MAX_PACKET_BYTES = 1400
# After a lost probe, MTU discovery waits this long before probing again.
MTU_PROBE_RETRY_S = 60.0
# Caps on what one connection holds.
DEFAULT_SEND_BUFFER_BYTES = 1 << 20
DEFAULT_RECV_BUFFER_BYTES = 1 << 20
# Sequence numbers wrap at 65536: keeping far fewer in flight keeps comparisons sound.
MAX_IN_FLIGHT_PACKETS = 1000
MAX_REORDER_PACKETS = 1000
# The selective ACK we send covers this many packets past the cumulative ACK.
MAX_SACK_SEND_BYTES = 64
DUPLICATE_ACKS = 3
MAX_CWND_BYTES = 8 << 20


class UTPState(enum.Enum):
    SYN_SENT = "syn-sent"
    SYN_RECEIVED = "syn-received"
    CONNECTED = "connected"
    FIN_SENT = "fin-sent"
    CLOSED = "closed"


def micros(now: float) -> int:
    """A time in seconds as the 32-bit microsecond stamp of BEP 29's header."""
    return int(now * 1_000_000) & U32_MASK


class _Sent:
    """A packet we sent that is not acknowledged yet."""

    __slots__ = ("fast_resent", "is_probe", "needs_resend", "payload", "sent_at", "seq_nr", "transmissions", "type")

    def __init__(self, kind: PacketType, seq_nr: int, payload: bytes, *, is_probe: bool = False) -> None:
        self.type = kind
        self.seq_nr = seq_nr
        self.payload = payload
        self.sent_at = 0.0
        self.transmissions = 0
        self.needs_resend = True
        self.fast_resent = False
        self.is_probe = is_probe


@dataclass(frozen=True, slots=True)
class SendDatagram:
    """Instruction: send ``payload`` to ``address``."""

    address: Address
    payload: bytes


class UTPConnection:
    """One uTP connection. Made by ``UTPSocket.connect`` or by an accepted SYN."""

    def __init__(
        self,
        address: Address,
        *,
        recv_id: int,
        send_id: int,
        seq_nr: int,
        now: float,
        state: UTPState,
        send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES,
        recv_buffer_bytes: int = DEFAULT_RECV_BUFFER_BYTES,
    ) -> None:
        self.address = address
        self.recv_id = recv_id
        self.send_id = send_id
        self.state = state
        self.is_incoming = state is UTPState.SYN_RECEIVED
        self.send_buffer_bytes = send_buffer_bytes
        self.recv_buffer_bytes = recv_buffer_bytes
        self.close_reason = ""
        # Counted reasons for datagrams dropped on this connection (hostile or stale).
        self.dropped: Counter[str] = Counter()
        # What happened to our packets: "timeouts", "fast resends", "resent", "sent".
        self.stats: Counter[str] = Counter()
        self.created_at = now
        # Sending.
        self.seq_nr = seq_nr  # the next one we use
        self._unsent = bytearray()
        # Offsets into _unsent where a packet must end (``end_packet``), in order.
        self._packet_ends: deque[int] = deque()
        self._in_flight: dict[int, _Sent] = {}  # by seq_nr, in sending order
        self._bytes_in_flight = 0  # payload bytes sent and neither acked nor awaiting resend
        self._unacked_bytes = 0  # payload bytes in _in_flight, sent or awaiting resend
        self._closing = False  # close() was called: FIN once the send buffer drains
        self._fin_seq: int | None = None
        self._fin_acked_at: float | None = None
        self.peer_wnd = MAX_PACKET_BYTES
        self.cwnd = float(2 * MIN_PACKET_BYTES)
        self._slow_start = True
        self._recovery_seq: int | None = None  # losses before this seq belong to the last cut
        self._last_ack_nr: int | None = None
        self._duplicate_acks = 0
        self.packet_bytes = MIN_PACKET_BYTES
        self._probe_after = now  # MTU discovery
        # Timing.
        self.srtt_s: float | None = None
        self.rttvar_s = 0.0
        self.rto_s = SYN_TIMEOUT_S if state is UTPState.SYN_SENT else INITIAL_RTO_S
        self._timeouts = 0
        self._rto_at: float | None = None
        self._last_sent_at = now
        self.last_received_at = now
        self._reply_micro = 0
        self._base_delays: deque[tuple[int, int]] = deque()  # (minute, minimum) buckets
        self._recent_delays: deque[int] = deque(maxlen=CURRENT_DELAY_SAMPLES)
        self.queueing_delay_us = 0
        # Receiving.
        self.ack_nr = 0  # the last sequence number received in order
        self._reorder: dict[int, bytes] = {}
        self._reorder_bytes = 0
        self._inbox = bytearray()
        self._eof_seq: int | None = None
        self._ack_due = False
        self.at_eof = False
        if state is UTPState.SYN_SENT:
            self._queue(PacketType.SYN, b"")

    def accept_syn(self, syn: Packet, reply_micro: int) -> None:
        """Set up an accepted connection from its SYN: one STATE is owed."""
        self.ack_nr = syn.seq_nr
        self.peer_wnd = syn.wnd_size
        self._reply_micro = reply_micro
        self._ack_due = True

    # -- the application's side ---------------------------------------------------------

    def write(self, data: bytes) -> int:
        """Queue ``data`` for sending; returns how many bytes fit the send buffer (the
        caller keeps the rest and offers it again later). Raises UsageError once closing."""
        if self._closing or self.state is UTPState.CLOSED:
            raise UsageError("uTP: write after close")
        room = self.send_buffer_bytes - len(self._unsent) - self._unacked_bytes
        taken = max(0, min(room, len(data)))
        self._unsent += data[:taken]
        return taken

    def end_packet(self) -> None:
        """The bytes written so far end a packet: what is written next goes in another.

        Transmission 3.00 (libutp) hands the peer wire protocol only what arrives after
        the packet that completed the handshake, so messages in that packet would wait
        for the next one; the peer layer ends a packet after its handshake."""
        if self._unsent and (not self._packet_ends or self._packet_ends[-1] != len(self._unsent)):
            self._packet_ends.append(len(self._unsent))

    @property
    def write_room(self) -> int:
        """Bytes ``write`` would take now."""
        return max(0, self.send_buffer_bytes - len(self._unsent) - self._unacked_bytes)

    @property
    def buffered_bytes(self) -> int:
        """Bytes written and not yet acknowledged."""
        return len(self._unsent) + self._unacked_bytes

    def read(self) -> bytes:
        """The bytes received in order since the last call (the receive window reopens)."""
        data = bytes(self._inbox)
        if data:
            self._inbox.clear()
            # The window grew: tell the peer, which may be waiting on it.
            self._ack_due = True
        return data

    @property
    def readable_bytes(self) -> int:
        return len(self._inbox)

    def close(self) -> None:
        """Finish: send what is buffered, then a FIN. Idempotent."""
        if self.state is UTPState.CLOSED:
            return
        if self.state in (UTPState.SYN_SENT, UTPState.SYN_RECEIVED):
            self._finish("closed before connecting")
            return
        self._closing = True

    def abort(self) -> list[SendDatagram]:
        """Close at once; returns the RESET that tells the peer (none before connecting)."""
        if self.state is UTPState.CLOSED:
            return []
        connected = self.state in (UTPState.CONNECTED, UTPState.FIN_SENT)
        self._finish("aborted")
        if not connected:
            return []
        reset = self._packet(PacketType.RESET, self.seq_nr, b"", 0.0)
        return [SendDatagram(self.address, reset.encode())]

    # -- datagrams in ---------------------------------------------------------------------

    def receive(self, packet: Packet, now: float) -> bool:
        """Take one packet routed to this connection; returns whether it was accepted
        (False: dropped, the reason counted in ``dropped``)."""
        if self.state is UTPState.CLOSED:
            return self._drop("closed")
        kind = packet.type
        if kind is PacketType.SYN:
            if self.state is UTPState.SYN_RECEIVED:
                self._ack_due = True  # our STATE was lost: one more, never more than one per SYN
                return True
            return self._drop("SYN on an open connection")
        if kind is PacketType.RESET:
            self._finish("reset by peer")
            return True
        if self.state is UTPState.SYN_SENT:
            # Only a STATE acknowledging our SYN moves us on.
            if kind is not PacketType.STATE or packet.ack_nr != (self.seq_nr - 1) & SEQ_MASK:
                return self._drop("not the answer to our SYN")
            self.ack_nr = (packet.seq_nr - 1) & SEQ_MASK
            self.state = UTPState.CONNECTED
        elif not self._ack_is_plausible(packet):
            return self._drop("acknowledges data never sent")
        elif self.state is UTPState.SYN_RECEIVED:
            # The follow-up must know the sequence number our STATE carried; a forged
            # source address never saw it.
            if packet.ack_nr != (self.seq_nr - 1) & SEQ_MASK:
                return self._drop("does not follow our STATE")
            self.state = UTPState.CONNECTED
        self.last_received_at = now
        self._reply_micro = (micros(now) - packet.timestamp_us) & U32_MASK
        self.peer_wnd = packet.wnd_size
        self._take_acks(packet, now)
        if kind is PacketType.DATA:
            self._take_data(packet.seq_nr, packet.payload)
        elif kind is PacketType.FIN:
            self._take_fin(packet.seq_nr)
        self._check_finished(now)
        return True

    def _drop(self, reason: str) -> bool:
        self.dropped[reason] += 1
        return False

    def _ack_is_plausible(self, packet: Packet) -> bool:
        """Does the packet acknowledge only what we sent? The cumulative ACK must not be
        past our last sequence number, nor a selective ACK bit."""
        last_sent = (self.seq_nr - 1) & SEQ_MASK
        if seq_less(last_sent, packet.ack_nr):
            return False
        if packet.sack is not None:
            offsets = sack_offsets(packet.sack)
            if offsets and seq_less(last_sent, (packet.ack_nr + 2 + offsets[-1]) & SEQ_MASK):
                return False
        return True

    def _take_acks(self, packet: Packet, now: float) -> None:
        acked_bytes = 0
        flight_before = self._bytes_in_flight
        ack_nr = packet.ack_nr
        for seq in list(self._in_flight):
            if seq_less(ack_nr, seq):
                break
            acked_bytes += self._acknowledge(seq, now)
        sacked: list[int] = []
        if packet.sack is not None:
            sacked = [(ack_nr + 2 + offset) & SEQ_MASK for offset in sack_offsets(packet.sack)]
            for seq in sacked:
                if seq in self._in_flight:
                    acked_bytes += self._acknowledge(seq, now)
        advanced = self._last_ack_nr is None or seq_less(self._last_ack_nr, ack_nr)
        if advanced:
            self._last_ack_nr = ack_nr
            self._duplicate_acks = 0
        elif ack_nr == self._last_ack_nr and packet.type is PacketType.STATE and self._in_flight:
            self._duplicate_acks += 1
        congested = self._detect_loss(sacked, now)
        if acked_bytes or advanced:
            self._timeouts = 0
            self._rto_at = now + self.rto_s if self._in_flight else None
        if acked_bytes and not congested:
            self._congestion_control(acked_bytes, flight_before, packet.timestamp_difference_us, now)

    def _acknowledge(self, seq: int, now: float) -> int:
        sent = self._in_flight.pop(seq)
        size = len(sent.payload)
        self._unacked_bytes -= size
        if not sent.needs_resend:
            self._bytes_in_flight -= size
        if sent.transmissions == 1:  # Karn: a resent packet's ACK could answer either copy
            self._sample_rtt(now - sent.sent_at)
        if sent.is_probe:
            self.packet_bytes = MAX_PACKET_BYTES
        if sent.type is PacketType.FIN:
            self._fin_acked_at = now
        return size

    def _sample_rtt(self, rtt_s: float) -> None:
        if self.srtt_s is None:
            self.srtt_s, self.rttvar_s = rtt_s, rtt_s / 2
        else:
            self.rttvar_s += (abs(self.srtt_s - rtt_s) - self.rttvar_s) / 4
            self.srtt_s += (rtt_s - self.srtt_s) / 8
        self.rto_s = min(MAX_RTO_S, max(MIN_RTO_S, self.srtt_s + 4 * self.rttvar_s))

    def _detect_loss(self, sacked: list[int], now: float) -> bool:
        """Mark lost packets for resending; returns whether the loss is congestion."""
        lost: list[_Sent] = []
        if self._duplicate_acks >= DUPLICATE_ACKS and self._in_flight:
            lost.append(next(iter(self._in_flight.values())))
        if len(sacked) >= DUPLICATE_ACKS:
            # A packet with three or more selectively acked packets after it is lost.
            for sent in self._in_flight.values():
                later = sum(1 for seq in sacked if seq_less(sent.seq_nr, seq))
                if later < DUPLICATE_ACKS:
                    break
                lost.append(sent)
        congestion = False
        for sent in lost:
            if sent.fast_resent or sent.needs_resend:
                continue
            sent.fast_resent = True
            self.stats["fast resends"] += 1
            self._mark_for_resend(sent)
            if sent.is_probe:
                self._probe_failed(sent, now)
            else:
                congestion = True
        if congestion and (self._recovery_seq is None or not seq_less(lost[0].seq_nr, self._recovery_seq)):
            self.cwnd = max(self.cwnd / 2, float(self.packet_bytes))
            self._slow_start = False
            self._recovery_seq = self.seq_nr
        return congestion

    def _mark_for_resend(self, sent: _Sent) -> None:
        if not sent.needs_resend:
            sent.needs_resend = True
            self._bytes_in_flight -= len(sent.payload)

    def _probe_failed(self, sent: _Sent, now: float) -> None:
        # The probe's own bytes are resent as they are: without DF-free fragmentation a
        # path that lost it for size alone would lose it again, but Linux fragments a
        # datagram locally once it has learned the path MTU from the ICMP error.
        sent.is_probe = False
        self.packet_bytes = MIN_PACKET_BYTES
        self._probe_after = now + MTU_PROBE_RETRY_S

    def _congestion_control(self, acked_bytes: int, flight_before: int, delay_us: int, now: float) -> None:
        if delay_us:
            self._record_delay(delay_us, now)
        # Until the peer reports a delay (its first packets say 0: unknown) there is no
        # queue to see; growth is bounded by the window actually used either way.
        queueing = self._queueing_delay_us() if self._recent_delays else 0
        self.queueing_delay_us = queueing
        if self._slow_start and queueing > TARGET_DELAY_US // 2:
            self._slow_start = False
        if self._slow_start:
            self.cwnd += acked_bytes
        else:
            off_target = max(-1.0, min(1.0, (TARGET_DELAY_US - queueing) / TARGET_DELAY_US))
            self.cwnd += MAX_CWND_INCREASE_BYTES * off_target * acked_bytes / self.cwnd
        # A sender that did not fill its window learned nothing about a bigger one.
        ceiling = max(2.0 * (flight_before + self.packet_bytes), float(self.packet_bytes))
        self.cwnd = max(float(self.packet_bytes), min(self.cwnd, ceiling, float(MAX_CWND_BYTES)))

    def _queueing_delay_us(self) -> int:
        base = self._base_delays[0][1]
        for _, minimum in self._base_delays:
            if (minimum - base) & U32_MASK > 0x80000000:
                base = minimum
        current = self._recent_delays[0]
        for sample in self._recent_delays:
            if (sample - current) & U32_MASK > 0x80000000:
                current = sample
        queueing = (current - base) & U32_MASK
        return 0 if queueing > 0x80000000 else queueing

    def _record_delay(self, delay_us: int, now: float) -> None:
        self._recent_delays.append(delay_us)
        minute = int(now // BASE_DELAY_BUCKET_S)
        if self._base_delays and self._base_delays[-1][0] == minute:
            _, minimum = self._base_delays[-1]
            if (delay_us - minimum) & U32_MASK > 0x80000000:
                self._base_delays[-1] = (minute, delay_us)
        else:
            self._base_delays.append((minute, delay_us))
            while len(self._base_delays) > BASE_DELAY_BUCKETS:
                self._base_delays.popleft()

    def _take_data(self, seq: int, payload: bytes) -> None:
        self._ack_due = True  # duplicates too: the peer may have lost our ACK
        distance = (seq - self.ack_nr) & SEQ_MASK
        if distance == 0 or distance >= 0x8000:
            return  # old: acked already
        if distance > MAX_REORDER_PACKETS:
            self.dropped["beyond the reorder buffer"] += 1
            return
        if self._eof_seq is not None and not seq_less(seq, self._eof_seq):
            self.dropped["data after FIN"] += 1
            return
        if seq in self._reorder:
            return
        if len(self._inbox) + self._reorder_bytes + len(payload) > self.recv_buffer_bytes:
            self.dropped["beyond the receive window"] += 1
            return
        self._reorder[seq] = payload
        self._reorder_bytes += len(payload)
        self._deliver()

    def _take_fin(self, seq: int) -> None:
        self._ack_due = True
        distance = (seq - self.ack_nr) & SEQ_MASK
        if distance == 0 or distance >= 0x8000 or distance > MAX_REORDER_PACKETS:
            return
        if self._eof_seq is None:
            self._eof_seq = seq
        self._deliver()

    def _deliver(self) -> None:
        while True:
            following = (self.ack_nr + 1) & SEQ_MASK
            payload = self._reorder.pop(following, None)
            if payload is not None:
                self._reorder_bytes -= len(payload)
                self.ack_nr = following
                if not self._closing:  # after close() nobody reads: acked and let go
                    self._inbox += payload
                continue
            if following == self._eof_seq:
                self.ack_nr = following
                self.at_eof = True
            return

    def _check_finished(self, now: float) -> None:
        if self.state is UTPState.FIN_SENT and self._fin_acked_at is not None and self.at_eof:
            self._finish("closed", final_ack=True)

    def _finish(self, reason: str, *, final_ack: bool = False) -> None:
        if self.state is UTPState.CLOSED:
            return
        self.state = UTPState.CLOSED
        self.close_reason = reason
        # The ACK of the peer's FIN is the one packet a closed connection still owes.
        self._ack_due = self._ack_due and final_ack
        self._unsent.clear()
        self._packet_ends.clear()
        self._in_flight.clear()
        self._reorder.clear()
        self._bytes_in_flight = self._unacked_bytes = self._reorder_bytes = 0

    # -- datagrams out --------------------------------------------------------------------

    def _queue(self, kind: PacketType, payload: bytes, *, is_probe: bool = False) -> _Sent:
        sent = _Sent(kind, self.seq_nr, payload, is_probe=is_probe)
        self.seq_nr = (self.seq_nr + 1) & SEQ_MASK
        self._in_flight[sent.seq_nr] = sent
        self._unacked_bytes += len(payload)
        return sent

    def _window(self) -> int:
        return int(min(self.cwnd, self.peer_wnd))

    def _fits(self, size: int) -> bool:
        # One packet may always be in flight, or a zero window would never reopen.
        return self._bytes_in_flight == 0 or self._bytes_in_flight + size <= self._window()

    def datagrams_to_send(self, now: float) -> list[SendDatagram]:
        """Everything due now: resends, new data as the window allows, the FIN, an ACK."""
        out: list[bytes] = []
        final_ack = self.state is UTPState.CLOSED and self._ack_due
        if self.state is UTPState.CLOSED and not final_ack:
            return []
        if self.state is UTPState.SYN_RECEIVED:
            # Before the initiator proves its address, a SYN gets one STATE and nothing else.
            if self._ack_due:
                out.append(self._packet(PacketType.STATE, self.seq_nr, b"", now).encode())
                self._ack_due = False
            return self._addressed(out, now)
        if final_ack:
            self._ack_due = False
            out.append(self._packet(PacketType.STATE, self.seq_nr, b"", now).encode())
            return self._addressed(out, now)
        for sent in self._in_flight.values():
            if sent.needs_resend and self._fits(len(sent.payload)):
                out.append(self._transmit(sent, now))
            if self.state is UTPState.SYN_SENT:
                return self._addressed(out, now)
        while self._unsent and len(self._in_flight) < MAX_IN_FLIGHT_PACKETS:
            probe = (
                self.packet_bytes < MAX_PACKET_BYTES
                and now >= self._probe_after
                and not any(sent.is_probe for sent in self._in_flight.values())
            )
            size = min(MAX_PACKET_BYTES if probe else self.packet_bytes, len(self._unsent))
            if self._packet_ends:
                size = min(size, self._packet_ends[0])
            probe = probe and size == MAX_PACKET_BYTES
            if not self._fits(size):
                break
            payload = bytes(self._unsent[:size])
            del self._unsent[:size]
            self._consume_packet_ends(size)
            out.append(self._transmit(self._queue(PacketType.DATA, payload, is_probe=probe), now))
        if self._closing and not self._unsent and self._fin_seq is None and self.state is UTPState.CONNECTED:
            fin = self._queue(PacketType.FIN, b"")
            self._fin_seq = fin.seq_nr
            self.state = UTPState.FIN_SENT
            out.append(self._transmit(fin, now))
        if self._ack_due or (not out and now - self._last_sent_at >= KEEPALIVE_S):
            if not out:
                out.append(self._packet(PacketType.STATE, self.seq_nr, b"", now).encode())
            self._ack_due = False
        return self._addressed(out, now)

    def _consume_packet_ends(self, size: int) -> None:
        ends = self._packet_ends
        for _ in range(len(ends)):
            end = ends.popleft() - size
            if end > 0:
                ends.append(end)

    def _addressed(self, payloads: list[bytes], now: float) -> list[SendDatagram]:
        if payloads:
            self._last_sent_at = now
        return [SendDatagram(self.address, payload) for payload in payloads]

    def _transmit(self, sent: _Sent, now: float) -> bytes:
        self.stats["resent" if sent.transmissions else "sent"] += 1
        sent.needs_resend = False
        sent.transmissions += 1
        sent.sent_at = now
        self._bytes_in_flight += len(sent.payload)
        if self._rto_at is None:
            self._rto_at = now + self.rto_s
        # Every packet carries the latest ACK, so no separate STATE is owed.
        self._ack_due = False
        return self._packet(sent.type, sent.seq_nr, sent.payload, now).encode()

    def _packet(self, kind: PacketType, seq_nr: int, payload: bytes, now: float) -> Packet:
        sack = self._sack() if kind is not PacketType.SYN else None
        window = max(0, self.recv_buffer_bytes - len(self._inbox) - self._reorder_bytes)
        return Packet(
            kind,
            self.recv_id if kind is PacketType.SYN else self.send_id,
            micros(now),
            self._reply_micro,
            window,
            seq_nr,
            self.ack_nr if kind is not PacketType.SYN else 0,
            sack,
            payload,
        )

    def _sack(self) -> bytes | None:
        if not self._reorder:
            return None
        limit = MAX_SACK_SEND_BYTES * 8
        offsets = [offset for seq in self._reorder if 0 <= (offset := ((seq - self.ack_nr - 2) & SEQ_MASK)) < limit]
        return encode_sack(offsets) or None

    # -- time -----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``tick`` must run next (None: nothing is timed)."""
        if self.state is UTPState.CLOSED:
            return None
        if self.state is UTPState.SYN_RECEIVED:
            return self.created_at + HALF_OPEN_TIMEOUT_S
        deadlines = [self._last_sent_at + KEEPALIVE_S]
        if self._rto_at is not None:
            deadlines.append(self._rto_at)
        if self._fin_acked_at is not None:
            deadlines.append(self._fin_acked_at + LINGER_S)
        return min(deadlines)

    def tick(self, now: float) -> None:
        """Run the timers due at ``now``: retransmission timeout, half-open and linger limits.
        Datagrams that follow come from ``datagrams_to_send``."""
        if self.state is UTPState.CLOSED:
            return
        if self.state is UTPState.SYN_RECEIVED:
            if now >= self.created_at + HALF_OPEN_TIMEOUT_S:
                self._finish("half-open timed out")
            return
        if self._fin_acked_at is not None and now >= self._fin_acked_at + LINGER_S:
            self._finish("closed")
            return
        if self._rto_at is None or now < self._rto_at:
            return
        if not self._in_flight:
            self._rto_at = None
            return
        self._timeouts += 1
        self.stats["timeouts"] += 1
        if self.state is UTPState.SYN_SENT:
            if self._timeouts >= MAX_SYN_SENDS:
                self._finish("connect timed out")
                return
        elif self._timeouts > MAX_TIMEOUTS:
            self._finish("timed out")
            return
        else:
            self.rto_s = min(MAX_RTO_S, self.rto_s * 2)
            self.cwnd = float(self.packet_bytes)
            self._slow_start = False
            self._recovery_seq = self.seq_nr
        for sent in self._in_flight.values():
            if sent.is_probe:
                self._probe_failed(sent, now)
            sent.fast_resent = False
            self._mark_for_resend(sent)
        self._rto_at = now + self.rto_s
