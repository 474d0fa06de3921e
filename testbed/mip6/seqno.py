"""16-bit Binding Update sequence numbers (RFC 6275 9.5.1, docs/protocol.md section 4) and the
R13 bound on how far one key may move them.

A sequence number is "greater" than the last accepted one when the difference, taken modulo
2^16 and read as a signed 16-bit integer, is positive: ``(int16)(new - last) > 0``. Exactly
half of the space minus one (32767 values) is ahead of ``last``; ``last`` itself and the
other 32768 values are behind and refused.

R13 (RFC 4449 section 5, docs/protocol.md "Interpretations"): with that comparison a BU
captured more than 2^15 numbers ago compares as newer than the current one. So the life of
a key is bounded by the total advance of the sequence number since the key was installed,
every step and every jump counted (a resynchronisation after BA 135 included): at most
``KBM_MAX_ADVANCE`` = 2^15. Every number authenticated under the key then lies within 2^15
of every other, and a captured BU never compares as newer than the current number. Both
sides keep the advance in their durable sequence store; at the bound they stop using the key.
"""

from __future__ import annotations

SEQ_BITS = 16
SEQ_MODULUS = 1 << SEQ_BITS  # 65536
SEQ_MAX = SEQ_MODULUS - 1  # 65535
SEQ_HALF = SEQ_MODULUS >> 1  # 32768: differences at or beyond this are "behind"

KBM_MAX_ADVANCE = SEQ_HALF
"""R13: the total advance of the sequence number one precomputed Kbm may authenticate (2^15)."""


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


def seq_step(new: int, last: int) -> int:
    """How far a move from ``last`` forward to ``new`` advances the number, 0..65535 (R13).

    The step is taken forward, modulo 2^16: an accepted BU (``seq_greater``) advances by
    1..32767; a resynchronisation to the number after a BA 135's advances by up to 32768."""
    return (_check(new, "new") - _check(last, "last")) & SEQ_MAX


def kbm_advance_left(advance: int) -> int:
    """How much further the sequence number may advance under one key after ``advance`` (R13), never negative."""
    if not isinstance(advance, int) or isinstance(advance, bool) or advance < 0:
        raise ValueError(f"advance must be a non-negative integer, not {advance!r}")
    return max(0, KBM_MAX_ADVANCE - advance)


def kbm_exhausted(advance: int) -> bool:
    """R13: True once the advance has reached 2^15: no further BU with this key; a new Kcn is required."""
    return kbm_advance_left(advance) == 0


def kbm_step_allowed(advance: int, step: int) -> bool:
    """R13: True when moving the number ``step`` further keeps the key's total advance within 2^15."""
    return 0 < step <= kbm_advance_left(advance)
