"""16-bit Binding Update sequence numbers (RFC 6275 9.5.1, docs/protocol.md section 4) and the R13 use limit.

A sequence number is "greater" than the last accepted one when the difference, taken modulo
2^16 and read as a signed 16-bit integer, is positive: ``(int16)(new - last) > 0``. Exactly
half of the space minus one (32767 values) is ahead of ``last``; ``last`` itself and the
other 32768 values are behind and refused.

R13 (RFC 4449 section 5): one Kbm authenticates at most 65,536 distinct Binding Updates
(the 16-bit sequence space); then both sides stop using the key and ask for a new Kcn.
``uses`` below counts the sequence numbers already consumed under a key.
"""

from __future__ import annotations

SEQ_BITS = 16
SEQ_MODULUS = 1 << SEQ_BITS  # 65536
SEQ_MAX = SEQ_MODULUS - 1  # 65535
SEQ_HALF = SEQ_MODULUS >> 1  # 32768: differences at or beyond this are "behind"

KBM_MAX_USES = 65536
"""R13: at most this many distinct uses (sequence numbers) of one precomputed Kbm."""


def _check(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= SEQ_MAX:
        raise ValueError(f"{name} must be an integer 0..{SEQ_MAX}, not {value!r}")
    return value


def seq_distance(new: int, last: int) -> int:
    """``(int16)(new - last)``: how far ``new`` is ahead of ``last`` (negative when behind), -32768..32767."""
    diff = (_check(new, "new") - _check(last, "last")) & SEQ_MAX
    return diff - SEQ_MODULUS if diff >= SEQ_HALF else diff


def seq_greater(new: int, last: int) -> bool:
    """True when ``new`` is greater than ``last`` modulo 2^16 (accept the BU), else False (BA 135).

    Vectors (docs/protocol.md section 4): last 10000: 10001 and 42767 accepted, 9999, 10000, 42768 and 0
    refused; last 42768: 0 and 9999 accepted.
    """
    if type(new) is int and type(last) is int and 0 <= new <= SEQ_MAX and 0 <= last <= SEQ_MAX:
        return 0 < ((new - last) & SEQ_MAX) < SEQ_HALF  # fast path: the CN calls this per BU
    return seq_distance(new, last) > 0


def seq_next(seq: int) -> int:
    """The sequence number after ``seq`` (65535 wraps to 0)."""
    return (_check(seq, "seq") + 1) & SEQ_MAX


def kbm_uses_left(uses: int) -> int:
    """How many more Binding Updates one Kbm may authenticate after ``uses`` (R13), never negative."""
    if not isinstance(uses, int) or isinstance(uses, bool) or uses < 0:
        raise ValueError(f"uses must be a non-negative integer, not {uses!r}")
    return max(0, KBM_MAX_USES - uses)


def kbm_exhausted(uses: int) -> bool:
    """R13: True once ``uses`` has reached 65,536: no further BU with this key; a new Kcn is required."""
    return kbm_uses_left(uses) == 0
