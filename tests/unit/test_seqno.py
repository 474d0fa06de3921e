"""16-bit sequence-number arithmetic (docs/protocol.md section 4, R4, R14) and the R13 use limit."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.mip6.seqno import (
    KBM_MAX_USES,
    SEQ_MAX,
    SEQ_MODULUS,
    kbm_exhausted,
    kbm_uses_left,
    seq_distance,
    seq_greater,
    seq_next,
)

seqs = st.integers(min_value=0, max_value=SEQ_MAX)


@pytest.mark.parametrize(
    "last, new, accepted",
    [
        (10000, 10001, True),
        (10000, 42767, True),
        (10000, 9999, False),
        (10000, 10000, False),
        (10000, 42768, False),
        (10000, 0, False),
        (42768, 0, True),
        (42768, 9999, True),
    ],
)
def test_r4_r14_sequence_vectors_of_mip6_section_4(last, new, accepted):
    """R4/R14: the CN accepts only a number greater than the last accepted, modulo 2^16."""
    assert seq_greater(new, last) is accepted


def test_wraps_at_65535():
    assert seq_next(65535) == 0
    assert seq_next(0) == 1
    assert seq_greater(0, 65535)
    assert not seq_greater(65535, 0)


@given(seqs)
def test_next_is_always_greater_and_self_never_is(seq):
    assert seq_greater(seq_next(seq), seq)
    assert not seq_greater(seq, seq)


@given(seqs, st.integers(min_value=1, max_value=SEQ_MODULUS))
def test_exactly_the_next_32767_numbers_are_greater(last, step):
    """The window ahead of ``last`` is 32767 numbers wide; everything else (32768 of them, last included) is refused."""
    new = (last + step) % SEQ_MODULUS
    assert seq_greater(new, last) is (step <= 32767)


@given(seqs, seqs)
def test_distance_is_int16_of_the_difference_and_antisymmetric(a, b):
    d = seq_distance(a, b)
    assert -32768 <= d <= 32767
    assert (b + d) % SEQ_MODULUS == a
    if d != -32768:
        assert seq_distance(b, a) == -d
        # never both "greater": a replay can not be ahead of the number that replaced it
        assert not (seq_greater(a, b) and seq_greater(b, a))
    else:
        assert not seq_greater(a, b) and not seq_greater(b, a)


@pytest.mark.parametrize("bad", [-1, 65536, 1.5, True, "1", None])
def test_out_of_range_sequence_numbers_are_programming_errors(bad):
    with pytest.raises(ValueError):
        seq_greater(bad, 0)
    with pytest.raises(ValueError):
        seq_greater(0, bad)
    with pytest.raises(ValueError):
        seq_next(bad)


def test_r13_a_kbm_has_exactly_65536_uses():
    """R13: at most 65,536 distinct uses of one Kbm; the 65,537th is refused (rekey required)."""
    assert KBM_MAX_USES == 65536
    uses = 0
    while not kbm_exhausted(uses):
        uses += 1
    assert uses == 65536
    assert kbm_uses_left(0) == 65536
    assert kbm_uses_left(65535) == 1 and not kbm_exhausted(65535)
    assert kbm_uses_left(65536) == 0 and kbm_exhausted(65536)
    assert kbm_uses_left(70000) == 0 and kbm_exhausted(70000)


def test_r13_sequence_space_of_one_key_is_exhausted_before_a_number_repeats():
    """R13: walking seq_next from any start, the 65,536 uses allowed never repeat a sequence number."""
    seq, seen = 12345, set()
    uses = 0
    while not kbm_exhausted(uses):
        seq = seq_next(seq)
        assert seq not in seen
        seen.add(seq)
        uses += 1
    assert len(seen) == KBM_MAX_USES


@pytest.mark.parametrize("bad", [-1, 1.0, True, None])
def test_r13_bad_use_counts_are_programming_errors(bad):
    with pytest.raises(ValueError):
        kbm_exhausted(bad)
