"""The authenticator checks themselves (``testbed.mip6.sealing``), each case a change of the
code that all earlier tests let through (issue 9's mutants): an authenticator wrong only in
its last octet, padding after the Binding Authorization Data, and the layout rules that
guard the engines before these checks run."""

from __future__ import annotations

import pytest
from engine_fixtures import CN_PC, COA1, HA, HOME, MN_HA

from testbed.mip6.messages import BindingAck, BindingUpdate, decode
from testbed.mip6.options import BindingAuthData, BindingRefreshAdvice, ReplayProtection, UnknownOption
from testbed.mip6.sealing import bad_valid, mn_ha_valid, option_layout_error, seal_bad, seal_mn_ha

KBM = bytes(range(20))


def _flip(mh: bytes, index: int) -> bytes:
    out = bytearray(mh)
    out[index] ^= 0x01
    return bytes(out)


def _padded(mh: bytes) -> bytes:
    """``mh`` with PadN(6) after its last option (Header Len raised by one)."""
    return mh[:1] + bytes((mh[1] + 1,)) + mh[2:] + b"\x01\x06" + bytes(6)


@pytest.mark.parametrize("msg", [BindingUpdate(7, 100, ack=True), BindingAck(0, 7, 100)])
def test_bad_valid_needs_all_12_authenticator_octets(msg):
    mh = seal_bad(msg, KBM, COA1, CN_PC)
    assert bad_valid(decode(mh), KBM, COA1, CN_PC)
    for i in range(1, 13):  # each authenticator octet, the last one (-1) included
        assert not bad_valid(decode(_flip(mh, -i)), KBM, COA1, CN_PC), i
    assert not bad_valid(decode(mh), bytes(20), COA1, CN_PC)
    assert not bad_valid(decode(mh), KBM, HOME, CN_PC)  # the care-of address is covered
    assert not bad_valid(decode(mh), KBM, COA1, HA)  # and the correspondent


@pytest.mark.parametrize("msg", [BindingUpdate(7, 100, ack=True), BindingAck(0, 7, 100)])
def test_bad_valid_refuses_padding_after_bad(msg):
    """The engines drop such messages earlier (option_layout_error: rule 1 at the CN, every
    message at the MN); ``bad_valid`` refuses them on its own too."""
    mh = _padded(seal_bad(msg, KBM, COA1, CN_PC))
    got = decode(mh)
    assert got.trailing_pad == 8 and type(got.options[-1]) is BindingAuthData
    assert not bad_valid(got, KBM, COA1, CN_PC)
    assert option_layout_error(got) == "padding follows BindingAuthData"


def test_bad_valid_refuses_a_message_whose_last_option_is_not_bad():
    mh = seal_bad(BindingUpdate(7, 100, ack=True), KBM, COA1, CN_PC)
    tail = b"\x02\x02\x00\x01" + b"\x01\x02\x00\x00"
    moved = mh[:1] + bytes(((len(mh) + len(tail)) // 8 - 1,)) + mh[2:] + tail
    assert not bad_valid(decode(moved), KBM, COA1, CN_PC)
    assert not bad_valid(decode(seal_mn_ha(BindingUpdate(7, 100), 300, KBM, COA1, HOME)), KBM, COA1, CN_PC)


def test_mn_ha_valid_needs_all_12_octets_and_nothing_after_it():
    spi, key = MN_HA
    msg = BindingAck(0, 3, 100, options=(ReplayProtection(99),))
    mh = seal_mn_ha(msg, spi, key, COA1, HOME)
    assert mn_ha_valid(decode(mh), key, COA1, HOME)
    for i in range(1, 13):
        assert not mn_ha_valid(decode(_flip(mh, -i)), key, COA1, HOME), i
    assert not mn_ha_valid(decode(_flip(mh, -13)), key, COA1, HOME)  # the SPI is covered
    assert not mn_ha_valid(decode(_padded(mh)), key, COA1, HOME)
    assert not mn_ha_valid(decode(mh), key, COA1, CN_PC)  # the home address is covered
    assert not mn_ha_valid(decode(seal_bad(msg, KBM, COA1, HOME)), key, COA1, HOME)


def test_layout_duplicates_are_by_option_type():
    assert option_layout_error(BindingUpdate(1, 1, options=(UnknownOption(32, b""), UnknownOption(33, b"")))) is None
    assert option_layout_error(BindingUpdate(1, 1, options=(UnknownOption(32, b""), UnknownOption(32, b"x")))) \
        == "duplicate option type 32"
    assert option_layout_error(BindingUpdate(1, 1, options=(BindingRefreshAdvice(1), BindingRefreshAdvice(2)))) \
        == "duplicate BindingRefreshAdvice option"
    assert option_layout_error(BindingUpdate(1, 1, options=(BindingRefreshAdvice(1), UnknownOption(2, b"")))) is None


# ``seal_home_ba``: the home agent's BA laid out from a template, octet for octet the encoder's.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from testbed.mip6.errors import CodecError  # noqa: E402
from testbed.mip6.sealing import seal_home_ba  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(status=st.integers(0, 255), seq=st.integers(0, 0xFFFF), lifetime=st.integers(0, 0xFFFF),
       timestamp=st.integers(0, 2**64 - 1), spi=st.integers(0, 2**32 - 1), key=st.binary(min_size=1, max_size=64),
       careof=st.binary(min_size=16, max_size=16), home=st.binary(min_size=16, max_size=16))
def test_the_home_agents_ba_is_the_encoders(status, seq, lifetime, timestamp, spi, key, careof, home):
    want = seal_mn_ha(BindingAck(status, seq, lifetime, options=(ReplayProtection(timestamp),)), spi, key, careof, home)
    got = seal_home_ba(status, seq, lifetime, timestamp, spi, key, careof, home)
    assert got == want
    ba = decode(got)
    assert (ba.status, ba.seq, ba.lifetime) == (status, seq, lifetime) and mn_ha_valid(ba, key, careof, home)


@pytest.mark.parametrize("args", [(256, 1, 1, 1, 1), (0, 0x10000, 1, 1, 1), (0, 1, 1, 2**64, 1), (0, 1, 1, 1, 2**32),
                                  (0, 1, 1, -1, 1)])
def test_the_home_agents_ba_refuses_what_does_not_fit(args):
    with pytest.raises(CodecError):
        seal_home_ba(*args, b"k", COA1, HOME)


from testbed.mip6.sealing import seal_home_bu, seal_precomputed_bu  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(seq=st.integers(0, 0xFFFF), lifetime=st.integers(0, 0xFFFF), timestamp=st.integers(0, 2**64 - 1),
       spi=st.integers(0, 2**32 - 1), key=st.binary(min_size=1, max_size=64),
       careof=st.binary(min_size=16, max_size=16), peer=st.binary(min_size=16, max_size=16))
def test_the_mobile_nodes_bus_are_the_encoders(seq, lifetime, timestamp, spi, key, careof, peer):
    home_bu = BindingUpdate(seq, lifetime, ack=True, home=True, options=(ReplayProtection(timestamp),))
    got = seal_home_bu(seq, lifetime, timestamp, spi, key, careof, peer)
    assert got == seal_mn_ha(home_bu, spi, key, careof, peer) and mn_ha_valid(decode(got), key, careof, peer)
    got = seal_precomputed_bu(seq, lifetime, key, careof, peer)
    assert got == seal_bad(BindingUpdate(seq, lifetime, ack=True), key, careof, peer)
    assert bad_valid(decode(got), key, careof, peer) and decode(got).seq == seq


@pytest.mark.parametrize("seal", [lambda s, life: seal_home_bu(s, life, 1, 1, b"k", COA1, HOME),
                                  lambda s, life: seal_precomputed_bu(s, life, b"k", COA1, HOME)])
@pytest.mark.parametrize("seq, lifetime", [(0x10000, 1), (-1, 1), (1, 0x10000)])
def test_the_mobile_nodes_bus_refuse_what_does_not_fit(seal, seq, lifetime):
    with pytest.raises(CodecError):
        seal(seq, lifetime)
