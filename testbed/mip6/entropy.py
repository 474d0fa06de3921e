"""Weak-key checks for a preconfigured Kcn (R3: "Kcn MUST be generated with sufficient randomness").

No test can prove that octets are random; these checks refuse the keys people actually type
or derive by hand, and they almost never refuse a key drawn from a CSPRNG. A key of n octets
is refused when:

- it is one repeated octet (``aaaa...``);
- it repeats a pattern of at most ``MAX_PATTERN`` octets (``0102 0102 ...``, ``deadbeef deadbeef ...``);
- its octet-to-octet differences (mod 256) repeat with a period of at most ``MAX_PATTERN``:
  arithmetic progressions such as the RFC test vector ``0102 0304 ... 14`` and its
  wrap-arounds (``fe ff 00 01 ...``), or ``00 01 03 04 06 07 ...``;
- it is strictly increasing or strictly decreasing;
- it has fewer than ``min_distinct_octets(n) = min(16, n // 2)`` distinct octet values;
- every octet is printable ASCII (0x20-0x7e): a passphrase, not random octets.

False refusals of a uniformly random key (computed exactly): at 20 octets, fewer than 10
distinct values has probability 3.4e-14, printable ASCII (95/256)^20 = 2.5e-9, a monotone
run about 2/20! = 8e-19, a periodic pattern or difference pattern at most 256^-11; all are
smaller for longer keys. ``keys.generate`` draws again in the (practically impossible) case
that a fresh key is refused, so ``testbed keygen`` never writes a key the validator refuses.

The messages say what is wrong without revealing the key.
"""

from __future__ import annotations

MAX_PATTERN = 8
"""Longest repeating pattern (and difference pattern) that counts as weak, in octets."""


def min_distinct_octets(length: int) -> int:
    """Fewest distinct octet values a Kcn of ``length`` octets must contain."""
    return min(16, length // 2)


def _period(seq: bytes | list[int], max_period: int) -> int | None:
    """Smallest p <= max_period with seq[i] == seq[i - p] for all i, if seq is long enough to tell."""
    n = len(seq)
    for p in range(1, max_period + 1):
        if n < 2 * p:  # need at least two full copies of the pattern to call it a repetition
            break
        if all(seq[i] == seq[i - p] for i in range(p, n)):
            return p
    return None


def kcn_weakness(kcn: bytes) -> str | None:
    """Why ``kcn`` looks low-entropy, or None when it passes every check (see the module doc).

    Length is not checked here (the R1 minimum of 20 octets is the caller's first check).
    """
    n = len(kcn)
    if n == 0:
        return "Kcn is empty"
    distinct = len(set(kcn))
    if distinct == 1:
        return "Kcn is one repeated octet (low entropy)"
    period = _period(kcn, MAX_PATTERN)
    if period is not None:
        return f"Kcn repeats a pattern of {period} octets (low entropy)"
    diffs = [(kcn[i] - kcn[i - 1]) & 0xFF for i in range(1, n)]
    dperiod = _period(diffs, MAX_PATTERN)
    if dperiod is not None:
        if dperiod == 1:
            return "Kcn is an arithmetic progression such as 01 02 03 ... (low entropy)"
        return f"Kcn follows a regular progression (octet differences repeat every {dperiod}; low entropy)"
    if all(a < b for a, b in zip(kcn, kcn[1:])) or all(a > b for a, b in zip(kcn, kcn[1:])):
        return "Kcn is a strictly monotone sequence of octets (low entropy)"
    need = min_distinct_octets(n)
    if distinct < need:
        return (
            f"Kcn has only {distinct} distinct octet values, a key of {n} octets "
            f"needs at least {need} (low entropy)"
        )
    if all(0x20 <= b <= 0x7E for b in kcn):
        return "Kcn is printable ASCII text, not random octets (low entropy)"
    return None
