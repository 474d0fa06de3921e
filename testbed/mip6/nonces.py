"""The correspondent node's nonce ring for return routability (RFC 6275 5.2.2, 9.4).

A fresh nonce is made every ``rotation_ns`` and stays usable for MAX_NONCE_LIFETIME after it
was made; its 16-bit index goes into HoT/CoT and comes back in the Nonce Indices option.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from testbed.mip6.constants import MAX_NONCE_LIFETIME_S, NONCE_LEN, SECOND_NS

DEFAULT_ROTATION_NS = 30 * SECOND_NS


class NonceRing:
    def __init__(
        self,
        rng: Callable[[int], bytes],
        *,
        rotation_ns: int = DEFAULT_ROTATION_NS,
        lifetime_ns: int = MAX_NONCE_LIFETIME_S * SECOND_NS,
    ) -> None:
        self._rng = rng
        self._rotation_ns = rotation_ns
        self._lifetime_ns = lifetime_ns
        self._nonces: OrderedDict[int, tuple[bytes, int]] = OrderedDict()
        self._next_index = int.from_bytes(rng(2), "big")

    def current(self, now: int) -> tuple[int, bytes]:
        """The index and nonce to hand out now (a new one once the current is old enough)."""
        if self._nonces:
            index = next(reversed(self._nonces))
            nonce, made = self._nonces[index]
            if now - made < self._rotation_ns:
                return index, nonce
        self._expire(now)
        index = self._next_index
        self._next_index = (index + 1) & 0xFFFF
        nonce = self._rng(NONCE_LEN)
        self._nonces[index] = (nonce, now)
        return index, nonce

    def lookup(self, index: int, now: int) -> bytes | None:
        """The nonce behind ``index`` if it is known and not expired, else None."""
        entry = self._nonces.get(index)
        if entry is None or now - entry[1] >= self._lifetime_ns:
            return None
        return entry[0]

    def _expire(self, now: int) -> None:
        while self._nonces:
            index, (_, made) = next(iter(self._nonces.items()))
            if now - made < self._lifetime_ns:
                break
            del self._nonces[index]
