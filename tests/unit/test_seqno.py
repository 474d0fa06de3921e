"""16-bit sequence-number arithmetic (docs/protocol.md section 4, R4, R14) and the R13 bound on a key's advance."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.mip6.seqno import (
    KBM_MAX_ADVANCE,
    SEQ_MAX,
    SEQ_MODULUS,
    kbm_advance_left,
    kbm_exhausted,
    kbm_step_allowed,
    seq_distance,
    seq_greater,
    seq_next,
    seq_step,
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


def test_r13_a_key_may_advance_the_number_by_2_to_the_15():
    """R13: the total advance under one key is at most 32,768; then the key is used up."""
    assert KBM_MAX_ADVANCE == 32768
    assert kbm_advance_left(0) == 32768 and not kbm_exhausted(0)
    assert kbm_advance_left(32767) == 1 and not kbm_exhausted(32767)
    assert kbm_advance_left(32768) == 0 and kbm_exhausted(32768)
    assert kbm_advance_left(70000) == 0 and kbm_exhausted(70000)
    assert kbm_step_allowed(0, 32768) and not kbm_step_allowed(0, 32769)
    assert kbm_step_allowed(32767, 1) and not kbm_step_allowed(32767, 2) and not kbm_step_allowed(32768, 1)
    assert not kbm_step_allowed(5, 0)  # standing still is not a step


@given(seqs, st.lists(st.integers(min_value=1, max_value=32767), min_size=1, max_size=40))
def test_r13_within_the_bound_no_earlier_number_ever_compares_as_newer(start, steps):
    """R13's reason: as long as the total advance stays within 2^15, every number used earlier
    under the key compares as not greater than the current one (a replay gets BA 135)."""
    seq, advance, used = start, 0, [start]
    for step in steps:
        new = (seq + step) % SEQ_MODULUS
        if not kbm_step_allowed(advance, seq_step(new, seq)):
            break
        advance += seq_step(new, seq)
        seq = new
        used.append(seq)
    assert advance <= KBM_MAX_ADVANCE
    assert not any(seq_greater(old, seq) for old in used)


def test_r13_beyond_the_bound_a_captured_number_would_compare_as_newer():
    """Why the bound is 2^15 and not 2^16: one step further and the first number is "newer"."""
    assert not seq_greater(1, (1 + 32768) % SEQ_MODULUS)
    assert seq_greater(1, (1 + 32769) % SEQ_MODULUS)


def test_seq_step_is_the_forward_distance():
    assert seq_step(10, 5) == 5 and seq_step(5, 65535) == 6 and seq_step(5, 5) == 0
    assert seq_step(42768, 10000) == 32768 and seq_step(9999, 10000) == 65535


@pytest.mark.parametrize("bad", [-1, 1.0, True, None])
def test_r13_bad_advances_are_programming_errors(bad):
    with pytest.raises(ValueError):
        kbm_exhausted(bad)
