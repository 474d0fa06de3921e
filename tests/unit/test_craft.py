"""The tester's own packet builder and reader (testbed/lab/craft.py) against the protocol
core and docs/protocol.md's test vector: two independent implementations must agree."""

from __future__ import annotations

import ipaddress

import pytest

from testbed.lab import craft
from testbed.mip6 import messages, packet, sealing
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.keys import PreconfiguredData
from testbed.mip6.options import AlternateCoA

KCN = bytes.fromhex("0102030405060708090a0b0c0d0e0f1011121314")
HOME, COA, CN = "2001:db8:0:1::1234", "2001:db8:0:2::1234", "2001:db8:0:3::1"
HN, CNN = bytes.fromhex("1111111111111111"), bytes.fromhex("2222222222222222")
PAIR = craft.PairKeys(craft.a16(HOME), craft.a16(CN), KCN, HN, CNN)


def A(t):
    return ipaddress.IPv6Address(t).packed


def test_kbm_matches_the_vector_and_the_core():
    assert PAIR.kbm(A(COA)).hex() == "ed6390be45315932ee374012e99e37484c149739"
    assert PAIR.kbm(None).hex() == "9ad8ee092f628eb2d4ce2a28d291defbdb16793b"
    ht = home_keygen_token(KCN, A(HOME), HN)
    assert PAIR.kbm(A(COA)) == binding_management_key(ht, careof_keygen_token(KCN, A(COA), CNN))


def test_bu_authenticator_matches_the_vector_and_verifies_in_the_core():
    raw = craft.binding_update(COA, CN, seq=1, lifetime=105, home=HOME, key=PAIR.kbm(A(COA)))
    p = packet.parse_packet(raw)
    assert p.home_address == A(HOME) and packet.mh_checksum_ok(p)
    bu = messages.decode(p.payload)
    assert bu.seq == 1 and bu.lifetime == 105 and bu.ack and not bu.home
    assert p.payload[-12:].hex() == "0bb472f675bbaa75162b2d2f"
    assert sealing.bad_valid(bu, PAIR.kbm(A(COA)), A(COA), A(CN))
    r = craft.read(raw)
    assert r.mh_type == craft.BU and r.seq == 1 and r.home_address == A(HOME) and r.mh_checksum_ok()


def test_alternate_coa_is_the_authenticated_care_of_address():
    other = "2001:db8:9::9"
    raw = craft.binding_update(COA, CN, seq=7, home=HOME, key=PAIR.kbm(A(other)),
                               options=[craft.MIP6OptAltCoA(acoa=other)])
    bu = messages.decode(packet.parse_packet(raw).payload)
    assert AlternateCoA(A(other)) in bu.options
    assert sealing.bad_valid(bu, PAIR.kbm(A(other)), A(other), A(CN))


def test_bad_not_last_is_refused_by_the_core_layout_check_though_its_authenticator_is_right():
    raw = craft.binding_update(COA, CN, seq=2, home=HOME, key=PAIR.kbm(A(COA)),
                               after_bad=[craft.MIP6OptAltCoA(acoa="2001:db8:bad::2")])
    p = packet.parse_packet(raw)
    assert packet.mh_checksum_ok(p)
    bu = messages.decode(p.payload)
    assert sealing.option_layout_error(bu) == "BindingAuthData is not the last option"
    assert not sealing.bad_valid(bu, PAIR.kbm(A(COA)), A(COA), A(CN))


def test_home_registration_verifies_with_the_core_rfc4285_check():
    key = bytes(range(20))
    raw = craft.home_registration(COA, "2001:db8:0:1::1", home=HOME, seq=3, timestamp=99, spi=0x100, key=key)
    bu = messages.decode(packet.parse_packet(raw).payload)
    assert bu.home and bu.ack
    assert sealing.mn_ha_valid(bu, key, A(COA), A(HOME))
    bad = craft.home_registration(COA, "2001:db8:0:1::1", home=HOME, seq=3, timestamp=99, spi=0x100, key=key,
                                  auth_ok=False)
    assert not sealing.mn_ha_valid(messages.decode(packet.parse_packet(bad).payload), key, A(COA), A(HOME))


def test_reading_a_ba_the_core_built():
    kbm = PAIR.kbm(A(COA))
    mh = sealing.seal_bad(messages.BindingAck(135, 77, 0), kbm, A(COA), A(CN))
    raw = packet.build_packet(A(CN), A(COA), 135, mh, rh2_address=A(HOME))
    r = craft.read(raw)
    assert (r.mh_type, r.status, r.seq, r.rh2, r.final_destination) == (craft.BA, 135, 77, A(HOME), A(HOME))
    assert r.mh_checksum_ok() and r.bad_valid(kbm, A(COA), A(CN))
    assert not r.bad_valid(PAIR.kbm(None), A(COA), A(CN))


def test_ba_the_tester_builds_is_authentic_for_the_core():
    kbm = PAIR.kbm(A(COA))
    raw = craft.binding_ack(CN, COA, home=HOME, status=0, seq=5, lifetime=10, key=kbm)
    p = packet.parse_packet(raw)
    ba = messages.decode(p.payload)
    assert p.rh2_address == A(HOME) and packet.mh_checksum_ok(p)
    assert (ba.status, ba.seq, ba.lifetime) == (0, 5, 10) and sealing.bad_valid(ba, kbm, A(COA), A(CN))


def test_destination_option_and_binding_error_and_tunnel():
    raw = craft.with_destination_option(craft.binding_update(COA, CN, seq=1, home=HOME, key=bytes(20)), 0xBE)
    p = packet.parse_packet(raw)
    assert p.unknown_option is not None and p.unknown_option[1] == 2 and p.home_address == A(HOME)
    be = craft.read(craft.binding_error(CN, COA, status=1, home=HOME))
    assert be.status == 1 and be.be_home_address == A(HOME) and be.mh_checksum_ok()
    inner = craft.home_test_init(HOME, CN, b"cookie!!")
    outer = craft.read(craft.tunnelled(COA, "2001:db8:0:1::1", inner))
    assert outer.inner().mh_type == craft.HOTI and outer.inner().cookie == b"cookie!!"


def test_pair_keys_from_preconfigured_data_hide_the_secrets():
    data = PreconfiguredData(HOME, CN, KCN, HN, CNN)
    keys = craft.PairKeys.of(data)
    assert keys == PAIR and KCN.hex() not in repr(keys) and HN.hex() not in repr(keys)


@pytest.mark.parametrize("bad", [b"", b"\x60" * 39, b"\x40" + bytes(39)])
def test_read_refuses_what_is_not_ipv6(bad):
    with pytest.raises(ValueError):
        craft.read(bad)
