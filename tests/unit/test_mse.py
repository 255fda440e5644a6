"""The MSE/PE handshake core: both sides against each other, and each against a peer
scripted here from the spec's formulas (so the wire format is checked, not just symmetry)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

from bitswarm.errors import PeerProtocolError, UsageError
from bitswarm.wire.mse import (
    MAX_INITIAL_PAYLOAD_BYTES,
    PRIME,
    REQ1_WINDOW_BYTES,
    VC_WINDOW_BYTES,
    CryptoMethod,
    EncryptionNegotiated,
    EncryptionPolicy,
    MseHandshake,
    MseState,
    looks_plaintext,
)

INFO_HASH = hashlib.sha1(b"the torrent").digest()
OTHER_HASH = hashlib.sha1(b"another torrent").digest()
BT_HANDSHAKE = b"\x13BitTorrent protocol" + bytes(8) + INFO_HASH + b"-XX0000-012345678901"
PREFER, REQUIRE = EncryptionPolicy.PREFER, EncryptionPolicy.REQUIRE


def sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def keystream(key: bytes):  # type: ignore[no-untyped-def]
    context = Cipher(ARC4(key), mode=None).encryptor()
    context.update(bytes(1024))
    return context


def xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def initiator(policy: EncryptionPolicy = PREFER, payload: bytes = BT_HANDSHAKE, seed: int = 1) -> MseHandshake:
    return MseHandshake.initiate(info_hash=INFO_HASH, policy=policy, rng=random.Random(seed), initial_payload=payload)


def receiver(policy: EncryptionPolicy = PREFER, seed: int = 2) -> MseHandshake:
    return MseHandshake.accept(info_hashes=lambda: [OTHER_HASH, INFO_HASH], policy=policy, rng=random.Random(seed))


def feed(core: MseHandshake, data: bytes, *, bytewise: bool) -> EncryptionNegotiated | None:
    """``data`` whole, or one byte at a time; the outcome must come with the last byte only."""
    if not bytewise:
        return core.receive(data)
    outcome = None
    for index in range(len(data)):
        assert outcome is None, "the handshake ended before its last byte"
        outcome = core.receive(data[index : index + 1])
    return outcome


def run_pair(
    a: MseHandshake, b: MseHandshake, *, bytewise: bool = False
) -> tuple[EncryptionNegotiated, EncryptionNegotiated]:
    assert feed(b, a.data_to_send(), bytewise=bytewise) is None  # Ya, PadA
    assert feed(a, b.data_to_send(), bytewise=bytewise) is None  # Yb, PadB
    b_done = feed(b, a.data_to_send(), bytewise=bytewise)  # step 3
    assert b_done is not None
    a_done = feed(a, b.data_to_send(), bytewise=bytewise)  # step 4
    assert a_done is not None
    return a_done, b_done


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(("ours", "theirs"), [(PREFER, REQUIRE), (REQUIRE, PREFER), (REQUIRE, REQUIRE)])
def test_two_cores_agree_on_rc4_and_carry_the_initial_payload(
    ours: EncryptionPolicy, theirs: EncryptionPolicy, bytewise: bool
) -> None:
    a, b = initiator(ours), receiver(theirs)
    a_done, b_done = run_pair(a, b, bytewise=bytewise)
    assert a_done.method is b_done.method is CryptoMethod.RC4
    assert b_done.info_hash == a_done.info_hash == INFO_HASH
    assert b_done.initial_payload == BT_HANDSHAKE
    assert a.state is b.state is MseState.DONE
    assert a_done.encryptor is not None
    assert b_done.decryptor is not None
    assert b_done.encryptor is not None
    assert a_done.decryptor is not None
    # The streams carry on where the handshake left them, both ways, and hide the bytes.
    message = b"\x00\x00\x00\x01\x02" * 100
    on_the_wire = a_done.encryptor.apply(message)
    assert on_the_wire != message
    assert b_done.decryptor.apply(on_the_wire) == message
    assert a_done.decryptor.apply(b_done.encryptor.apply(message)) == message


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_offered_both_a_prefer_receiver_takes_plaintext_after_the_obfuscated_handshake(bytewise: bool) -> None:
    a, b = initiator(PREFER), receiver(PREFER)
    a_done, b_done = run_pair(a, b, bytewise=bytewise)
    assert a_done.method is b_done.method is CryptoMethod.PLAINTEXT
    assert b_done.initial_payload == BT_HANDSHAKE  # the initial payload is RC4 whatever is chosen
    assert a_done.encryptor is a_done.decryptor is b_done.encryptor is b_done.decryptor is None


def test_bytes_after_the_handshake_in_the_same_read_come_out_decrypted() -> None:
    a, b = initiator(), receiver(REQUIRE)
    b.receive(a.data_to_send())
    a.receive(b.data_to_send())
    step_three = a.data_to_send()
    b_done = b.receive(step_three)
    assert b_done is not None
    assert b_done.encryptor is not None
    a_done = a.receive(b.data_to_send() + b_done.encryptor.apply(b"first payload"))
    assert a_done is not None
    assert a_done.payload == b"first payload"


def test_the_public_key_and_padding_come_first_and_padding_is_bounded() -> None:
    for seed in range(20):
        opening = initiator(seed=seed).data_to_send()
        assert 96 <= len(opening) <= 96 + 512
        assert 1 < int.from_bytes(opening[:96], "big") < PRIME - 1


# -- against a peer scripted from the spec ------------------------------------------------


@dataclass
class ScriptedPeer:
    """The other side, written straight from the spec with its own key and keystreams."""

    initiator: bool
    private_key: int = 0x1234567890ABCDEF1234567890ABCDEF12345678
    secret: bytes = b""
    sent: object = None
    received: object = None
    buffer: bytearray = field(default_factory=bytearray)

    def public_key(self) -> bytes:
        return pow(2, self.private_key, PRIME).to_bytes(96, "big")

    def take_key(self, key: bytes, info_hash: bytes = INFO_HASH) -> None:
        self.secret = pow(int.from_bytes(key[:96], "big"), self.private_key, PRIME).to_bytes(96, "big")
        key_a, key_b = sha1(b"keyA", self.secret, info_hash), sha1(b"keyB", self.secret, info_hash)
        self.sent = keystream(key_a if self.initiator else key_b)
        self.received = keystream(key_b if self.initiator else key_a)

    def encrypt(self, data: bytes) -> bytes:
        return self.sent.update(data)  # type: ignore[attr-defined, no-any-return]

    def decrypt(self, data: bytes) -> bytes:
        return self.received.update(data)  # type: ignore[attr-defined, no-any-return]

    def step_three(self, provide: int, ia: bytes = b"", pad_c: bytes = b"", skey: bytes = INFO_HASH) -> bytes:
        obfuscated = xor(sha1(b"req2", skey), sha1(b"req3", self.secret))
        body = bytes(8) + provide.to_bytes(4, "big") + len(pad_c).to_bytes(2, "big") + pad_c
        return sha1(b"req1", self.secret) + obfuscated + self.encrypt(body + len(ia).to_bytes(2, "big") + ia)

    def step_four(self, select: int, pad_d: bytes = b"") -> bytes:
        return self.encrypt(bytes(8) + select.to_bytes(4, "big") + len(pad_d).to_bytes(2, "big") + pad_d)


def scripted_b_answers(a: MseHandshake, pad_b: bytes = b"") -> ScriptedPeer:
    """A sent Ya; the scripted B answers with Yb and PadB and reads A's step 3 (checked)."""
    b = ScriptedPeer(initiator=False)
    b.take_key(a.data_to_send())
    assert a.receive(b.public_key() + pad_b) is None
    step_three = a.data_to_send()
    assert step_three[:20] == sha1(b"req1", b.secret)
    assert xor(step_three[20:40], sha1(b"req3", b.secret)) == sha1(b"req2", INFO_HASH)
    plain = b.decrypt(step_three[40:])
    assert plain[:8] == bytes(8)
    return b


@pytest.mark.parametrize("policy", [PREFER, REQUIRE])
def test_initiator_step_three_follows_the_spec(policy: EncryptionPolicy) -> None:
    a = initiator(policy)
    b = ScriptedPeer(initiator=False)
    b.take_key(a.data_to_send())
    a.receive(b.public_key())
    step_three = a.data_to_send()
    plain = b.decrypt(step_three[40:])
    provide = int.from_bytes(plain[8:12], "big")
    assert provide == (3 if policy is PREFER else 2)
    assert int.from_bytes(plain[12:14], "big") == 0  # empty PadC
    assert int.from_bytes(plain[14:16], "big") == len(BT_HANDSHAKE)
    assert plain[16:] == BT_HANDSHAKE


def test_initiator_takes_plaintext_when_selected_under_prefer() -> None:
    a = initiator(PREFER)
    b = scripted_b_answers(a, pad_b=b"\xaa" * 300)
    done = a.receive(b.step_four(1, pad_d=b"\x01" * 7) + b"plain payload")
    assert done is not None
    assert done.method is CryptoMethod.PLAINTEXT
    assert done.payload == b"plain payload"
    assert done.encryptor is None
    assert done.decryptor is None


def test_initiator_under_require_refuses_a_plaintext_selection() -> None:
    a = initiator(REQUIRE)
    b = scripted_b_answers(a)
    with pytest.raises(PeerProtocolError, match="did not offer"):
        a.receive(b.step_four(1))
    assert a.state is MseState.FAILED
    with pytest.raises(UsageError):
        a.receive(b"more")


def test_initiator_refuses_a_selection_of_two_methods() -> None:
    a = initiator(PREFER)
    b = scripted_b_answers(a)
    with pytest.raises(PeerProtocolError, match="selected 3"):
        a.receive(b.step_four(3))


def test_initiator_refuses_oversize_pad_d() -> None:
    a = initiator()
    b = scripted_b_answers(a)
    with pytest.raises(PeerProtocolError, match="PadD of 513 bytes"):
        a.receive(b.step_four(2, pad_d=bytes(513)))


def test_initiator_finds_vc_after_the_longest_pad_b_but_no_later() -> None:
    a = initiator()
    b = scripted_b_answers(a, pad_b=bytes(512))
    assert a.receive(b.step_four(2)) is not None

    late = initiator()
    b = ScriptedPeer(initiator=False)
    b.take_key(late.data_to_send())
    late.receive(b.public_key() + bytes(513))
    with pytest.raises(PeerProtocolError, match=f"verification constant within {VC_WINDOW_BYTES}"):
        late.receive(b.step_four(2))


def test_receiver_takes_plaintext_when_that_is_all_prefer_is_offered() -> None:
    b = receiver(PREFER)
    a = ScriptedPeer(initiator=True)
    b.receive(a.public_key() + b"\x55" * 200)  # Ya, PadA
    a.take_key(b.data_to_send())
    done = b.receive(a.step_three(provide=1, ia=BT_HANDSHAKE, pad_c=b"\x00" * 16) + b"plain after")
    assert done is not None
    assert done.method is CryptoMethod.PLAINTEXT
    assert done.initial_payload == BT_HANDSHAKE  # IA is encrypted whatever is selected
    assert done.payload == b"plain after"
    answer = a.decrypt(b.data_to_send())
    assert answer[:8] == bytes(8)
    assert int.from_bytes(answer[8:12], "big") == 1


def test_receiver_takes_rc4_when_it_is_all_that_is_offered_and_handles_an_empty_initial_payload() -> None:
    b = receiver(PREFER)
    a = ScriptedPeer(initiator=True)
    b.receive(a.public_key())
    a.take_key(b.data_to_send())
    done = b.receive(a.step_three(provide=2) + a.encrypt(BT_HANDSHAKE))
    assert done is not None
    assert done.method is CryptoMethod.RC4
    assert done.initial_payload == b""
    assert done.payload == BT_HANDSHAKE


def test_receiver_under_require_refuses_plaintext_only() -> None:
    b = receiver(REQUIRE)
    a = ScriptedPeer(initiator=True)
    b.receive(a.public_key())
    a.take_key(b.data_to_send())
    with pytest.raises(PeerProtocolError, match="no common method"):
        b.receive(a.step_three(provide=1))
    assert b.state is MseState.FAILED


def test_receiver_refuses_an_unknown_torrent() -> None:
    b = receiver()
    a = ScriptedPeer(initiator=True)
    b.receive(a.public_key())
    a.take_key(b.data_to_send())
    with pytest.raises(PeerProtocolError, match="SKEY names no torrent"):
        b.receive(a.step_three(provide=2, skey=b"\x99" * 20))


def test_receiver_refuses_a_wrong_verification_constant() -> None:
    b = receiver()
    a = ScriptedPeer(initiator=True)
    b.receive(a.public_key())
    a.take_key(b.data_to_send())
    step_three = bytearray(a.step_three(provide=2))
    step_three[40] ^= 0xFF  # the first byte of the encrypted VC
    with pytest.raises(PeerProtocolError, match="verification constant"):
        b.receive(bytes(step_three))


def test_receiver_refuses_oversize_pad_c_and_initial_payload() -> None:
    b = receiver()
    a = ScriptedPeer(initiator=True)
    b.receive(a.public_key())
    a.take_key(b.data_to_send())
    with pytest.raises(PeerProtocolError, match="PadC of 513 bytes"):
        b.receive(a.step_three(provide=2, pad_c=bytes(513)))

    b = receiver()
    a = ScriptedPeer(initiator=True)
    b.receive(a.public_key())
    a.take_key(b.data_to_send())
    with pytest.raises(PeerProtocolError, match="initial payload"):
        b.receive(a.step_three(provide=2, ia=bytes(MAX_INITIAL_PAYLOAD_BYTES + 1)))


@pytest.mark.parametrize("key", [0, 1, PRIME - 1, PRIME, (1 << 768) - 1])
def test_a_public_key_out_of_range_is_refused(key: int) -> None:
    b = receiver()
    with pytest.raises(PeerProtocolError, match="out of range"):
        b.receive(key.to_bytes(96, "big"))
    a = initiator()
    with pytest.raises(PeerProtocolError, match="out of range"):
        a.receive(key.to_bytes(96, "big"))


# -- garbage, truncation, never finishing --------------------------------------------------


def test_garbage_after_a_key_fails_once_the_req1_window_is_passed() -> None:
    b = receiver()
    garbage = random.Random(3).randbytes(96 + REQ1_WINDOW_BYTES)
    # One byte short of the window it can still be padding: the core waits, holding no more.
    assert b.receive(garbage[:-1]) is None
    assert b.state is MseState.AWAITING_REQ1
    with pytest.raises(PeerProtocolError, match=f"within {REQ1_WINDOW_BYTES} bytes"):
        b.receive(garbage[-1:])


def test_a_large_read_of_garbage_fails_at_once() -> None:
    with pytest.raises(PeerProtocolError, match="req1"):
        receiver().receive(random.Random(4).randbytes(64 * 1024))


def test_a_truncated_handshake_waits_without_an_outcome() -> None:
    """Cut anywhere (inside Ya, PadA, req1, SKEY, the provide block, IA), the receiver waits:
    never done, never failed."""
    a, probe = initiator(), receiver()
    opening = a.data_to_send()
    probe.receive(opening)
    a.receive(probe.data_to_send())
    whole = opening + a.data_to_send()
    step_three = len(opening)
    for end in (1, 95, 96, step_three, step_three + 20, step_three + 40, step_three + 54, len(whole) - 1):
        b = receiver()
        assert b.receive(whole[:end]) is None, end
        assert b.state not in (MseState.DONE, MseState.FAILED), end


def test_a_finished_core_takes_no_more_bytes() -> None:
    a, b = initiator(), receiver()
    run_pair(a, b)
    with pytest.raises(UsageError, match="done"):
        a.receive(b"x")


def test_disable_speaks_no_mse_and_initial_payload_is_bounded() -> None:
    with pytest.raises(UsageError):
        initiator(EncryptionPolicy.DISABLE)
    with pytest.raises(UsageError):
        initiator(payload=bytes(MAX_INITIAL_PAYLOAD_BYTES + 1))


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"", None),
        (b"\x13", None),
        (b"\x13BitTorrent", None),
        (b"\x13BitTorrent protocol", True),
        (BT_HANDSHAKE, True),
        (b"\x14BitTorrent protocol", False),
        (b"\x13BitTorrent Protocol", False),
        (b"\x00" * 96, False),
    ],
)
def test_incoming_detection_by_the_first_twenty_bytes(head: bytes, expected: bool | None) -> None:
    assert looks_plaintext(head) is expected
