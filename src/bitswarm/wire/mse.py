"""Message Stream Encryption (MSE/PE) handshake as a sans-IO core, for both sides.

What the spec (Vuze's "Message Stream Encryption" page) lays down, with A the side that
dialled and B the side that accepted:

1. A -> B: Ya, PadA
2. B -> A: Yb, PadB
3. A -> B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
           ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
4. B -> A: ENCRYPT(VC, crypto_select, len(PadD), PadD), then the payload stream
5. A -> B: the payload stream

Y is a 768-bit Diffie-Hellman public key (96 bytes, big-endian) over the spec's prime
with generator 2 and a 160-bit private key; S the shared secret; SKEY the torrent's
info-hash; HASH is SHA-1; VC eight zero bytes. RC4 keys are HASH('keyA', S, SKEY) for A's
direction and HASH('keyB', S, SKEY) for B's, each with its first 1024 bytes of keystream
thrown away. Everything after the keys (VC onwards, IA included) is RC4 no matter what is
selected; when B selects plaintext, only the payload stream after PadD goes in the clear.

The machine reads fixed-size steps (a table from state to how many bytes it needs and
what it does with them), except the two synchronisation points, where the padding of
unknown length (0 to 512 bytes) is skipped by searching for a marker within the spec's
window: HASH('req1', S) within 512 + 20 bytes after Ya (B), ENCRYPT(VC) within 512 + 8
bytes after Yb (A). A peer that goes past a window, sends a key out of range, a wrong VC,
an unknown SKEY or no common method raises ``PeerProtocolError``; the core is FAILED
after that and every further call is a ``UsageError``. The I/O layer owns the deadline.

We send PadA/PadB of random length and empty PadC/PadD (the spec reserves those two for
future use), and, as A, the BitTorrent handshake as IA, which saves a round trip.
"""

from __future__ import annotations

import enum
import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bitswarm.errors import PeerProtocolError, UsageError

# The spec's 768-bit safe prime (the Oakley group 1 prime) and generator.
PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
    16,
)
GENERATOR = 2
KEY_BYTES = 96
PRIVATE_KEY_BITS = 160
VC = bytes(8)
# The spec caps every padding at 512 bytes; the sync windows follow from it.
MAX_PAD_BYTES = 512
REQ1_WINDOW_BYTES = MAX_PAD_BYTES + 20
VC_WINDOW_BYTES = MAX_PAD_BYTES + 8
RC4_DISCARD_BYTES = 1024
# An initial payload is the BitTorrent handshake (68 bytes) and perhaps a few messages;
# the field allows 64 KiB, which a connection not yet tied to a torrent does not get.
MAX_INITIAL_PAYLOAD_BYTES = 4096
PROTOCOL_PREFIX = b"\x13BitTorrent protocol"


class EncryptionPolicy(enum.Enum):
    """What a session does about MSE, in the words other clients use."""

    PREFER = "prefer"  # MSE handshakes, offering RC4 and plaintext; plain BitTorrent accepted too
    REQUIRE = "require"  # RC4 only, both ways; plaintext handshakes are refused
    DISABLE = "disable"  # plain BitTorrent only; MSE handshakes are refused


class CryptoMethod(enum.IntFlag):
    """crypto_provide / crypto_select bits."""

    PLAINTEXT = 0x01
    RC4 = 0x02


class MseState(enum.Enum):
    AWAITING_KEY = "awaiting the other side's public key"
    # B's steps
    AWAITING_REQ1 = "searching for HASH('req1', S)"
    AWAITING_SKEY = "awaiting the obfuscated SKEY"
    AWAITING_PROVIDE = "awaiting VC, crypto_provide and len(PadC)"
    AWAITING_PAD_C = "awaiting PadC and len(IA)"
    AWAITING_IA = "awaiting the initial payload"
    # A's steps
    AWAITING_VC = "searching for ENCRYPT(VC)"
    AWAITING_SELECT = "awaiting crypto_select and len(PadD)"
    AWAITING_PAD_D = "awaiting PadD"
    DONE = "done"
    FAILED = "failed"


class RC4Stream:
    """One direction's RC4 keystream, with the spec's first 1024 bytes already spent."""

    __slots__ = ("_context",)

    def __init__(self, key: bytes) -> None:
        # Imported with the first encrypted peer: cryptography and its OpenSSL are 7.5 MiB
        # resident, which a daemon seeding at rest, or talking plaintext only, never needs.
        from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4  # noqa: PLC0415
        from cryptography.hazmat.primitives.ciphers import Cipher  # noqa: PLC0415

        self._context = Cipher(ARC4(key), mode=None).encryptor()
        self._context.update(bytes(RC4_DISCARD_BYTES))

    def apply(self, data: bytes | bytearray | memoryview) -> bytes:
        """``data`` xor the next ``len(data)`` keystream bytes (encrypts and decrypts alike)."""
        return self._context.update(data)

    def apply_in_place(self, data: memoryview) -> None:
        """``apply`` over a writable buffer, without a copy."""
        self._context.update_into(data, data)


@dataclass(frozen=True, slots=True, eq=False)
class EncryptionNegotiated:
    """The handshake is over: what to feed the peer core and how to carry on.

    ``initial_payload`` is what A put in IA (B's side; empty on A's), ``payload`` the
    bytes that came after the handshake, both already decrypted. ``encryptor`` and
    ``decryptor`` carry on the RC4 streams when RC4 was selected, else they are None.
    """

    info_hash: bytes
    method: CryptoMethod
    initial_payload: bytes
    payload: bytes
    encryptor: RC4Stream | None
    decryptor: RC4Stream | None


def offered_methods(policy: EncryptionPolicy) -> CryptoMethod:
    """The methods a policy lets us provide (as A) or select from (as B)."""
    if policy is EncryptionPolicy.REQUIRE:
        return CryptoMethod.RC4
    if policy is EncryptionPolicy.PREFER:
        return CryptoMethod.RC4 | CryptoMethod.PLAINTEXT
    raise UsageError("the 'disable' policy speaks no MSE")


def looks_plaintext(head: bytes) -> bool | None:
    """True when ``head`` starts a plain BitTorrent handshake, False when it cannot, None
    when too few bytes have come to tell (a plain one starts with 19 'BitTorrent protocol')."""
    if not PROTOCOL_PREFIX.startswith(head[: len(PROTOCOL_PREFIX)]):
        return False
    return True if len(head) >= len(PROTOCOL_PREFIX) else None


def _sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()  # noqa: S324 - the spec's HASH


def _xor(left: bytes, right: bytes) -> bytes:
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(len(left), "big")


class MseHandshake:
    """One side of one MSE handshake. Use ``initiate`` (A) or ``accept`` (B).

    Bytes go in with ``receive``; what we owe the other side waits in ``data_to_send``.
    ``receive`` returns an ``EncryptionNegotiated`` once, when the handshake is over, and
    None until then; after it the core is DONE and takes no more bytes.
    """

    def __init__(
        self,
        *,
        initiator: bool,
        policy: EncryptionPolicy,
        rng: random.Random,
        info_hash: bytes = b"",
        initial_payload: bytes = b"",
        info_hashes: Callable[[], Iterable[bytes]] | None = None,
    ) -> None:
        if len(initial_payload) > MAX_INITIAL_PAYLOAD_BYTES:
            raise UsageError(f"an initial payload of {len(initial_payload)} bytes; at most {MAX_INITIAL_PAYLOAD_BYTES}")
        self.initiator = initiator
        self.methods = offered_methods(policy)
        self.info_hash = info_hash
        self.state = MseState.AWAITING_KEY
        self._info_hashes = info_hashes
        self._initial_payload = initial_payload
        self._received_payload = b""
        self._private_key = rng.getrandbits(PRIVATE_KEY_BITS) | 1 << (PRIVATE_KEY_BITS - 1)
        self._secret = b""
        self._encryptor: RC4Stream | None = None
        self._decryptor: RC4Stream | None = None
        self._marker = b""  # HASH('req1', S) for B, ENCRYPT(VC) for A
        self._next_bytes = 0  # the length of the variable field the next step reads
        self._selected = CryptoMethod(0)
        self._buffer = bytearray()
        public_key = pow(GENERATOR, self._private_key, PRIME).to_bytes(KEY_BYTES, "big")
        self._outbox = bytearray(public_key + rng.randbytes(rng.randint(0, MAX_PAD_BYTES)))
        # How many bytes each fixed-size step needs; the searches and PadC/PadD/IA vary.
        self._steps: dict[MseState, tuple[Callable[[], int], Callable[[bytes], None]]] = {
            MseState.AWAITING_KEY: (lambda: KEY_BYTES, self._on_public_key),
            MseState.AWAITING_SKEY: (lambda: 20, self._on_skey),
            MseState.AWAITING_PROVIDE: (lambda: 14, self._on_provide),
            MseState.AWAITING_PAD_C: (lambda: self._next_bytes + 2, self._on_pad_c),
            MseState.AWAITING_IA: (lambda: self._next_bytes, self._on_initial_payload),
            MseState.AWAITING_SELECT: (lambda: 6, self._on_select),
            MseState.AWAITING_PAD_D: (lambda: self._next_bytes, self._on_pad_d),
        }

    @classmethod
    def initiate(
        cls, *, info_hash: bytes, policy: EncryptionPolicy, rng: random.Random, initial_payload: bytes = b""
    ) -> MseHandshake:
        """A's side, for a connection we dialled to share ``info_hash`` (Ya and PadA are queued)."""
        return cls(initiator=True, policy=policy, rng=rng, info_hash=info_hash, initial_payload=initial_payload)

    @classmethod
    def accept(
        cls, *, info_hashes: Callable[[], Iterable[bytes]], policy: EncryptionPolicy, rng: random.Random
    ) -> MseHandshake:
        """B's side; ``info_hashes`` lists the torrents we share, among which SKEY is found."""
        return cls(initiator=False, policy=policy, rng=rng, info_hashes=info_hashes)

    # -- bytes in ------------------------------------------------------------------------

    def receive(self, data: bytes) -> EncryptionNegotiated | None:
        """Take bytes from the other side; returns the outcome once the handshake is over.

        Raises ``PeerProtocolError`` when the other side breaks the handshake.
        """
        if self.state in (MseState.DONE, MseState.FAILED):
            raise UsageError(f"the MSE handshake is {self.state.value}")
        self._buffer += data
        try:
            while not self.is_done and self._advance():
                pass
        except PeerProtocolError:
            self.state = MseState.FAILED
            self._buffer.clear()
            raise
        if not self.is_done:
            return None
        rest = bytes(self._buffer)
        self._buffer.clear()
        rc4 = self._selected is CryptoMethod.RC4
        if rc4 and rest:
            assert self._decryptor is not None
            rest = self._decryptor.apply(rest)
        return EncryptionNegotiated(
            info_hash=self.info_hash,
            method=self._selected,
            initial_payload=self._received_payload,
            payload=rest,
            encryptor=self._encryptor if rc4 else None,
            decryptor=self._decryptor if rc4 else None,
        )

    @property
    def is_done(self) -> bool:
        return self.state is MseState.DONE

    def _advance(self) -> bool:
        """One step if its bytes are here; False when it must wait for more."""
        if self.state in (MseState.AWAITING_REQ1, MseState.AWAITING_VC):
            return self._synchronise()
        needed, handle = self._steps[self.state]
        size = needed()
        if len(self._buffer) < size:
            return False
        step = bytes(self._buffer[:size])
        del self._buffer[:size]
        handle(step)
        return True

    def _synchronise(self) -> bool:
        window = REQ1_WINDOW_BYTES if self.state is MseState.AWAITING_REQ1 else VC_WINDOW_BYTES
        found = self._buffer.find(self._marker, 0, window)
        if found < 0:
            if len(self._buffer) >= window:
                what = "HASH('req1', S)" if self.state is MseState.AWAITING_REQ1 else "the verification constant"
                raise PeerProtocolError(f"encryption: no {what} within {window} bytes of padding")
            return False
        del self._buffer[: found + len(self._marker)]
        if self.state is MseState.AWAITING_REQ1:
            self.state = MseState.AWAITING_SKEY
        else:
            self.state = MseState.AWAITING_SELECT  # the decryptor already spent VC's keystream
        return True

    def _on_public_key(self, key: bytes) -> None:
        public_key = int.from_bytes(key, "big")
        # 0, 1 and P - 1 (and anything out of range) would give a secret anyone can guess.
        if not 1 < public_key < PRIME - 1:
            raise PeerProtocolError("encryption: a public key out of range")
        self._secret = pow(public_key, self._private_key, PRIME).to_bytes(KEY_BYTES, "big")
        if self.initiator:
            self._send_step_three()
            self.state = MseState.AWAITING_VC
        else:
            self._marker = _sha1(b"req1", self._secret)
            self.state = MseState.AWAITING_REQ1

    def _start_ciphers(self) -> None:
        key_a = _sha1(b"keyA", self._secret, self.info_hash)
        key_b = _sha1(b"keyB", self._secret, self.info_hash)
        ours, theirs = (key_a, key_b) if self.initiator else (key_b, key_a)
        self._encryptor, self._decryptor = RC4Stream(ours), RC4Stream(theirs)

    def _send_step_three(self) -> None:
        self._start_ciphers()
        assert self._encryptor is not None
        assert self._decryptor is not None
        obfuscated = _xor(_sha1(b"req2", self.info_hash), _sha1(b"req3", self._secret))
        header = VC + int(self.methods).to_bytes(4, "big") + (0).to_bytes(2, "big")  # empty PadC
        header += len(self._initial_payload).to_bytes(2, "big") + self._initial_payload
        self._outbox += _sha1(b"req1", self._secret) + obfuscated + self._encryptor.apply(header)
        self._marker = self._decryptor.apply(VC)  # what B's VC looks like on the wire

    def _on_skey(self, obfuscated: bytes) -> None:
        assert self._info_hashes is not None
        wanted = _xor(obfuscated, _sha1(b"req3", self._secret))
        for info_hash in self._info_hashes():
            if _sha1(b"req2", info_hash) == wanted:
                self.info_hash = info_hash
                break
        else:
            raise PeerProtocolError("encryption: SKEY names no torrent we share")
        self._start_ciphers()
        self.state = MseState.AWAITING_PROVIDE

    def _on_provide(self, encrypted: bytes) -> None:
        assert self._decryptor is not None
        plain = self._decryptor.apply(encrypted)
        if plain[:8] != VC:
            raise PeerProtocolError("encryption: wrong verification constant")
        provided = CryptoMethod(int.from_bytes(plain[8:12], "big") & (CryptoMethod.RC4 | CryptoMethod.PLAINTEXT))
        common = provided & self.methods
        # A side that offers both leaves the choice to us; like libtorrent's default we take
        # plaintext then: the handshake is still obfuscated, which is what protocol
        # detection looks at, and RC4 would halve a fast link's throughput (195 against
        # 408 MiB/s here). A side that wants the stream encrypted offers RC4 alone and
        # gets it; ``require`` is how a bitswarm user asks for that.
        if common & CryptoMethod.PLAINTEXT:
            self._selected = CryptoMethod.PLAINTEXT
        elif common & CryptoMethod.RC4:
            self._selected = CryptoMethod.RC4
        else:
            offered, ours = int(provided), int(self.methods)
            raise PeerProtocolError(f"encryption: no common method (offered {offered}, we take {ours})")
        self._next_bytes = self._pad_length(plain[12:14], "PadC")
        self.state = MseState.AWAITING_PAD_C

    def _on_pad_c(self, encrypted: bytes) -> None:
        assert self._decryptor is not None
        plain = self._decryptor.apply(encrypted)
        length = int.from_bytes(plain[-2:], "big")
        if length > MAX_INITIAL_PAYLOAD_BYTES:
            limit = MAX_INITIAL_PAYLOAD_BYTES
            raise PeerProtocolError(f"encryption: an initial payload of {length} bytes; at most {limit}")
        self._next_bytes = length
        self.state = MseState.AWAITING_IA

    def _on_initial_payload(self, encrypted: bytes) -> None:
        assert self._decryptor is not None
        assert self._encryptor is not None
        self._received_payload = self._decryptor.apply(encrypted) if encrypted else b""
        answer = VC + int(self._selected).to_bytes(4, "big") + (0).to_bytes(2, "big")  # empty PadD
        self._outbox += self._encryptor.apply(answer)
        self.state = MseState.DONE

    def _on_select(self, encrypted: bytes) -> None:
        assert self._decryptor is not None
        plain = self._decryptor.apply(encrypted)
        selected = int.from_bytes(plain[:4], "big")
        if selected not in (CryptoMethod.RC4, CryptoMethod.PLAINTEXT) or not selected & self.methods:
            raise PeerProtocolError(f"encryption: the other side selected {selected}, which we did not offer")
        self._selected = CryptoMethod(selected)
        self._next_bytes = self._pad_length(plain[4:6], "PadD")
        self.state = MseState.AWAITING_PAD_D

    def _on_pad_d(self, encrypted: bytes) -> None:
        assert self._decryptor is not None
        if encrypted:
            self._decryptor.apply(encrypted)  # keeps the keystream in step; the content means nothing
        self.state = MseState.DONE

    @staticmethod
    def _pad_length(field: bytes, name: str) -> int:
        length = int.from_bytes(field, "big")
        if length > MAX_PAD_BYTES:
            raise PeerProtocolError(f"encryption: {name} of {length} bytes; at most {MAX_PAD_BYTES}")
        return length

    # -- bytes out -----------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """The handshake bytes owed to the other side since the last call."""
        data = bytes(self._outbox)
        self._outbox.clear()
        return data
