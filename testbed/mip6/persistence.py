"""Sequence numbers that must survive a restart (R4, R13; the MN's and the HA's records), as
pure values: the records, the policy that decides when one must be made durable, and the
in-memory state an engine keeps per record.

The engines do no I/O. An engine is built with the records the agent read from its store
(``records``: a mapping from record key to ``SeqRecord``, or ``RecordUnreadable`` when the
agent could not read one) and keeps its sequence state in memory from then on. When a number
must be durable before a packet leaves, the engine returns a ``Persist`` action
(``testbed.mip6.actions``) in front of the ``Send`` it protects; the agent writes the record
and only then sends (docs/architecture.md).

Two policies (``Persistence``):

- ``strict`` (the default): every accepted (CN, HA) or sent (MN) number is written before the
  packet that depends on it leaves. A restart loses nothing, and costs nothing either.
- ``reserve: N``: log-ahead, as PostgreSQL does for its sequences. The record holds a
  high-water mark, the number just accepted or sent plus N; nothing is written again until a
  number passes the mark. After a crash the node takes the mark as its last number: a CN or
  HA refuses everything up to it (BA 135 carrying the mark, so the MN resynchronises in one
  round trip), an MN goes on after it. No number is ever accepted or sent twice. The cost:
  one extra round trip after a CN or HA restart, and up to N numbers of sequence space per
  restart. Those N count against a precomputed key's R13 limit: the record's advance
  includes the reserve (a reserve skipped by a restart is an advance), and a reserve never
  reaches past the limit.

Record keys are strings the engines build (``cn/<home>/<key id>``, ``ha/<home>``,
``mn/...``); ``check_key`` refuses one that could hold key material.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from testbed.mip6.seqno import SEQ_MAX, seq_greater

MAX_KEY_LENGTH = 256
MAX_RESERVE = 4096
"""The largest reserve: at most 1/8 of a precomputed key's 2^15 life is lost per restart."""
_SECRET_LIKE = re.compile(r"[0-9a-fA-F]{40,}")


class _Record(NamedTuple):
    last: int
    advance: int


class SeqRecord(_Record):
    """One durable record. ``last``: the last sequence number sent (MN) or accepted (CN, HA),
    or, under a reserve, the high-water mark; 0..65535. ``advance``: the total advance of the
    sequence number under this key so far, the reserve included (R13), >= 0. (A named tuple:
    immutable; the engines make one per durable write, with numbers they checked.)"""

    __slots__ = ()

    def __new__(cls, last: int, advance: int) -> SeqRecord:
        if not isinstance(last, int) or isinstance(last, bool) or not 0 <= last <= SEQ_MAX:
            raise ValueError(f"SeqRecord.last must be an integer 0..{SEQ_MAX}, not {last!r}")
        if not isinstance(advance, int) or isinstance(advance, bool) or advance < 0:
            raise ValueError(f"SeqRecord.advance must be a non-negative integer, not {advance!r}")
        return tuple.__new__(cls, (last, advance))

    def __repr__(self) -> str:
        return f"SeqRecord(last={self.last}, advance={self.advance})"


def _record(last: int, advance: int) -> SeqRecord:
    """A SeqRecord of numbers already in range (``advance_to``'s, on the per-packet path)."""
    return tuple.__new__(SeqRecord, (last, advance))


@dataclass(frozen=True, slots=True)
class RecordUnreadable:
    """In ``records`` instead of a ``SeqRecord``: the agent could not read this key's record.
    The engine refuses to use the key (a ``store_failed`` event per message) rather than
    guess its last number."""

    reason: str


def check_key(key: str) -> str:
    """``key`` if it is an acceptable record key, else ValueError (empty, too long, secret-like)."""
    if not isinstance(key, str) or not key:
        raise ValueError("a sequence record key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"a sequence record key must be at most {MAX_KEY_LENGTH} characters")
    if _SECRET_LIKE.search(key):
        raise ValueError("a sequence record key must not contain key material (a run of 40+ hex digits)")
    return key


@dataclass(frozen=True, slots=True)
class Persistence:
    """How sequence numbers reach stable storage: ``reserve`` 0 is ``strict``."""

    reserve: int = 0

    def __post_init__(self) -> None:
        if type(self.reserve) is not int or not 0 <= self.reserve <= MAX_RESERVE:
            raise ValueError(f"a persistence reserve must be a whole number 1..{MAX_RESERVE} (0: strict), "
                             f"not {self.reserve!r}")

    @property
    def strict(self) -> bool:
        return self.reserve == 0

    def describe(self) -> str:
        """"strict" or "reserve: N", as the agent's ``status`` reports it."""
        return "strict" if self.reserve == 0 else f"reserve: {self.reserve}"


STRICT = Persistence()


class SeqState(NamedTuple):
    """An engine's in-memory state of one record: ``last`` number accepted or sent, the R13
    ``advance`` so far (without an unused reserve), and ``mark``, the number the durable
    record holds (``last`` under ``strict``, up to ``last`` + N under a reserve)."""

    last: int
    advance: int
    mark: int


def state_from(record: SeqRecord) -> SeqState:
    """The state a node starts from after reading ``record``: its mark is its last number."""
    return SeqState(record.last, record.advance, record.last)


def advance_to(state: SeqState | None, seq: int, advance: int, policy: Persistence,
               limit: int | None = None) -> tuple[SeqState, SeqRecord | None]:
    """The state once ``seq`` is accepted (or sent) with total advance ``advance``, and the
    record to make durable first: None when the durable mark already covers ``seq``.

    ``limit``: the advance a reserve may not pass (R13 for a precomputed key); the reserve
    shrinks to fit, down to none."""
    reserve = policy.reserve
    if reserve and state is not None and not seq_greater(seq, state.mark):
        return SeqState(seq, advance, state.mark), None
    if limit is not None and advance + reserve > limit:
        reserve = max(0, limit - advance)
    mark = (seq + reserve) & SEQ_MAX
    return SeqState(seq, advance, mark), _record(mark, advance + reserve)
