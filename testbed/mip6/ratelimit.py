"""Rate limits the engines apply to what they send (time is the ``now`` they are given, in ns).

- ``TokenBucket``: error messages (ICMPv6 errors, RFC 4443 section 2.4 (f); Binding Errors,
  which RFC 6275 section 9.3.3 asks to limit "in the same manner as is done for ICMPv6
  messages"): up to ``burst`` at once, ``rate_per_s`` on average.
- ``UpdateRateLimit``: a mobile node sends at most MAX_UPDATE_RATE (3) messages of one type
  to one node within any second (RFC 6275 section 11.8).
"""

from __future__ import annotations

from collections import deque

from testbed.mip6.constants import MAX_UPDATE_RATE, SECOND_NS

ERROR_RATE_PER_S = 10.0
ERROR_BURST = 10


class TokenBucket:
    """A token bucket: ``take(now)`` is True (and spends a token) when a message may go now."""

    __slots__ = ("rate_per_s", "burst", "_tokens", "_at")

    def __init__(self, rate_per_s: float = ERROR_RATE_PER_S, burst: int = ERROR_BURST) -> None:
        if not rate_per_s > 0 or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"a token bucket needs a positive rate and a burst of at least 1, not {rate_per_s!r}, {burst!r}")
        self.rate_per_s = float(rate_per_s)
        self.burst = burst
        self._tokens = float(burst)
        self._at: int | None = None

    def take(self, now: int) -> bool:
        if self._at is not None and now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate_per_s / SECOND_NS)
        if self._at is None or now > self._at:
            self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class UpdateRateLimit:
    """RFC 6275 11.8: at most ``rate`` messages of one kind to one peer within any ``window_ns``."""

    __slots__ = ("rate", "window_ns", "_sent")

    def __init__(self, rate: int = MAX_UPDATE_RATE, window_ns: int = SECOND_NS) -> None:
        self.rate = rate
        self.window_ns = window_ns
        self._sent: dict[tuple[bytes, int], deque[int]] = {}

    def wait_ns(self, peer: bytes, kind: int, now: int) -> int:
        """0 when a message of ``kind`` may go to ``peer`` now, else how long until it may."""
        sent = self._sent.get((peer, kind))
        if sent is None or len(sent) < self.rate:
            return 0
        return max(0, sent[0] + self.window_ns - now)

    def record(self, peer: bytes, kind: int, now: int) -> None:
        sent = self._sent.get((peer, kind))
        if sent is None:
            sent = self._sent[(peer, kind)] = deque(maxlen=self.rate)
        sent.append(now)
