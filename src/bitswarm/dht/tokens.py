"""announce_peer tokens (BEP 5): a keyed hash of the requester's IP address.

The key is a secret that changes every ``rotation_s``; a token made with the current or
the previous secret is accepted, so a token lives between one and two rotations (5 to 10
minutes by default, as BEP 5 suggests). Nothing is stored per requester.
"""

from __future__ import annotations

import hashlib
import hmac
import random

ROTATION_S = 5 * 60.0
SECRET_BYTES = 16
TOKEN_BYTES = 8


class TokenIssuer:
    """Makes and checks tokens; ``rng`` supplies the secrets (pass ``random.SystemRandom()``
    outside simulations)."""

    def __init__(self, rng: random.Random, now: float, *, rotation_s: float = ROTATION_S) -> None:
        self._rng = rng
        self.rotation_s = rotation_s
        self._current = rng.randbytes(SECRET_BYTES)
        self._previous = self._current
        self._rotated_at = now

    def _rotate(self, now: float) -> None:
        elapsed_rotations = int((now - self._rotated_at) // self.rotation_s)
        if elapsed_rotations <= 0:
            return
        # After two or more silent rotations no old token may pass.
        self._previous = self._current if elapsed_rotations == 1 else self._rng.randbytes(SECRET_BYTES)
        self._current = self._rng.randbytes(SECRET_BYTES)
        self._rotated_at += elapsed_rotations * self.rotation_s

    @staticmethod
    def _token(secret: bytes, host: str) -> bytes:
        return hmac.new(secret, host.encode(), hashlib.sha256).digest()[:TOKEN_BYTES]

    def issue(self, host: str, now: float) -> bytes:
        """The token for a requester at ``host``."""
        self._rotate(now)
        return self._token(self._current, host)

    def is_valid(self, token: bytes, host: str, now: float) -> bool:
        """True when ``token`` was issued to ``host`` in this rotation or the previous one."""
        self._rotate(now)
        return any(hmac.compare_digest(token, self._token(secret, host)) for secret in (self._current, self._previous))
