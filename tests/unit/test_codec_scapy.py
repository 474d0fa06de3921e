"""Cross-check of our codec with scapy 2.8's Mobile IPv6 layers, both ways.

scapy builds -> we parse and compare field values (and our checksum verdict on scapy's checksum);
we build -> scapy dissects the same field values, and the checksum scapy computes itself equals ours.
Traps (docs/host.md): MIP6OptNonceIndices / MIP6OptBindingAuthData default to olen=16 (we set 4 and
12); the BAD authenticator is a 96-bit integer; scapy's checksum uses the HAO only when the HAO is
the only option object of its layer (a dissected layer also holds the PadN); MIP6MH_BA.answers
tests the wrong flag bit (not used here). scapy's BU defaults to flags KHA: always set them.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BRR,
    MIP6MH_BU,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptBRAdvice,
    MIP6OptMsgAuth,
    MIP6OptNonceIndices,
    MIP6OptReplayProtection,
)

from testbed.mip6 import messages as m
from testbed.mip6 import packet
from testbed.mip6.constants import IPPROTO_MH
from testbed.mip6.options import (
    AlternateCoA,
    BindingAuthData,
    BindingRefreshAdvice,
    MobilityMessageAuth,
    NonceIndices,
    ReplayProtection,
)

HOME_S, COA_S, CN_S, HA_S = "2001:db8:0:1::1234", "2001:db8:0:2::1234", "2001:db8:0:3::1", "2001:db8:0:1::1"
HOME, COA, CN, HA = (ipaddress.IPv6Address(a).packed for a in (HOME_S, COA_S, CN_S, HA_S))
AUTH = bytes(range(0xC0, 0xCC))
COOKIE = bytes.fromhex("0102030405060708")
TOKEN = bytes.fromhex("f1f2f3f4f5f6f7f8")


def bad_opt(auth: bytes = AUTH) -> MIP6OptBindingAuthData:
    return MIP6OptBindingAuthData(olen=12, authenticator=int.from_bytes(auth, "big"))


def with_hao(src: str, dst: str, home: str):
    # HAO as the only option object, so scapy's checksum uses the home address.
    return IPv6(src=src, dst=dst) / IPv6ExtHdrDestOpt(options=[HAO(hoa=home)])


def with_rh2(src: str, dst: str, home: str):
    return IPv6(src=src, dst=dst) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[home])


def parse(scapy_pkt) -> tuple[packet.Packet, m.Message]:
    pkt = packet.parse_packet(bytes(scapy_pkt))
    assert pkt.next_header == IPPROTO_MH
    assert packet.mh_checksum_ok(pkt), "scapy's checksum must verify with our pseudo-header"
    return pkt, m.decode(pkt.payload)


# ------------------------------------------------------------------ scapy builds, we parse


def test_scapy_bu_with_hao_and_bad():
    sp = with_hao(COA_S, CN_S, HOME_S) / MIP6MH_BU(seq=0x1234, flags="A", mhtime=105, options=[bad_opt()])
    pkt, msg = parse(sp)
    assert (pkt.src, pkt.dst, pkt.home_address) == (COA, CN, HOME)
    assert msg == m.BindingUpdate(0x1234, 105, ack=True, options=(BindingAuthData(AUTH),))
    assert len(msg.raw) == 32  # same 32-octet shape as ours
    assert msg.raw[6:] == m.encode(msg)[6:]


@pytest.mark.parametrize("flags,expect", [("A", (1, 0, 0, 0)), ("H", (0, 1, 0, 0)), ("L", (0, 0, 1, 0)),
                                          ("K", (0, 0, 0, 1)), ("KHA", (1, 1, 0, 1)), ("", (0, 0, 0, 0))])
def test_scapy_bu_flags(flags, expect):
    _, msg = parse(IPv6(src=HOME_S, dst=CN_S) / MIP6MH_BU(seq=1, flags=flags, mhtime=0))
    assert (msg.ack, msg.home, msg.link_local, msg.key_mgmt) == tuple(map(bool, expect))


def test_scapy_bu_with_all_route_optimisation_options():
    sp = with_hao(COA_S, CN_S, HOME_S) / MIP6MH_BU(
        seq=7, flags="A", mhtime=3,
        options=[MIP6OptAltCoA(acoa=HA_S), MIP6OptNonceIndices(olen=4, hni=0x0A0B, coni=0x0C0D), bad_opt()],
    )
    _, msg = parse(sp)
    assert msg.options == (AlternateCoA(HA), NonceIndices(0x0A0B, 0x0C0D), BindingAuthData(AUTH))
    assert msg.raw[6:] == m.encode(msg)[6:]  # scapy made the same alignment choices as we do


def test_scapy_home_registration_with_rfc4285_options():
    sp = with_hao(COA_S, HA_S, HOME_S) / MIP6MH_BU(
        seq=9, flags="AH", mhtime=100,
        options=[MIP6OptReplayProtection(timestamp=0x0102030405060708),
                 MIP6OptMsgAuth(subtype=1, mspi=0x11223344, authdata=AUTH)],
    )
    _, msg = parse(sp)
    assert msg.home and msg.ack
    assert msg.options == (ReplayProtection(0x0102030405060708), MobilityMessageAuth(1, 0x11223344, AUTH))


def test_scapy_ba_with_rh2_bad_and_refresh_advice():
    sp = with_rh2(CN_S, COA_S, HOME_S) / MIP6MH_BA(
        status=135, flags="K", seq=0xBEEF, mhtime=30, options=[MIP6OptBRAdvice(rinter=0x0506), bad_opt()]
    )
    pkt, msg = parse(sp)
    assert (pkt.src, pkt.dst, pkt.rh2_address, pkt.routing_type, pkt.segments_left) == (CN, COA, HOME, 2, 1)
    assert msg == m.BindingAck(135, 0xBEEF, 30, key_mgmt=True,
                               options=(BindingRefreshAdvice(0x0506), BindingAuthData(AUTH)))


def test_scapy_ba_without_k():
    _, msg = parse(IPv6(src=CN_S, dst=HOME_S) / MIP6MH_BA(status=0, flags=0, seq=1, mhtime=0))
    assert msg == m.BindingAck(0, 1, 0, key_mgmt=False)


@pytest.mark.parametrize(
    "layer,expected",
    [
        (MIP6MH_HoTI(cookie=COOKIE), m.HomeTestInit(COOKIE)),
        (MIP6MH_CoTI(cookie=COOKIE), m.CareofTestInit(COOKIE)),
        (MIP6MH_HoT(index=0x1234, cookie=COOKIE, token=TOKEN), m.HomeTest(0x1234, COOKIE, TOKEN)),
        (MIP6MH_CoT(index=0xFFFE, cookie=COOKIE, token=TOKEN), m.CareofTest(0xFFFE, COOKIE, TOKEN)),
        (MIP6MH_BE(status=1, ha=HOME_S), m.BindingError(1, HOME)),
        (MIP6MH_BRR(), m.BindingRefreshRequest()),
    ],
    ids=lambda v: type(v).__name__,
)
def test_scapy_other_messages(layer, expected):
    _, msg = parse(IPv6(src=CN_S, dst=HOME_S) / layer)
    assert msg == expected


def test_scapy_tunnelled_hoti():
    sp = IPv6(src=COA_S, dst=HA_S) / IPv6(src=HOME_S, dst=CN_S) / MIP6MH_HoTI(cookie=COOKIE)
    outer = packet.parse_packet(bytes(sp))
    assert outer.next_header == 41 and (outer.src, outer.dst) == (COA, HA)
    inner = packet.parse_packet(outer.payload)
    assert (inner.src, inner.dst) == (HOME, CN) and packet.mh_checksum_ok(inner)
    assert m.decode(inner.payload) == m.HomeTestInit(COOKIE)


# ------------------------------------------------------------------ we build, scapy dissects


def ours(msg, src, dst, **kw) -> bytes:
    return packet.build_packet(src, dst, IPPROTO_MH, m.encode(msg), **kw)


def scapy_checksum(raw: bytes, mh_cls) -> int:
    """The checksum scapy computes itself for our packet (HAO as the only option object)."""
    sp = IPv6(raw)
    if IPv6ExtHdrDestOpt in sp:
        dst = sp[IPv6ExtHdrDestOpt]
        dst.options = [opt for opt in dst.options if isinstance(opt, HAO)]
        dst.len = None
    at = len(raw) - len(bytes(sp[mh_cls])) + 4  # the checksum field
    del sp[mh_cls].cksum
    rebuilt = bytes(sp)
    assert rebuilt[:at] + rebuilt[at + 2 :] == raw[:at] + raw[at + 2 :], "scapy re-encodes the rest identically"
    return int.from_bytes(rebuilt[at : at + 2], "big")


def test_our_bu_dissected_by_scapy():
    msg = m.BindingUpdate(0xA1B2, 105, ack=True, key_mgmt=True,
                          options=(AlternateCoA(HA), NonceIndices(3, 4), BindingAuthData(AUTH)))
    raw = ours(msg, COA, CN, home_address=HOME)
    sp = IPv6(raw)
    assert sp[IPv6].src == COA_S and sp[IPv6].dst == CN_S
    assert [o.hoa for o in sp[IPv6ExtHdrDestOpt].options if isinstance(o, HAO)] == [HOME_S]
    bu = sp[MIP6MH_BU]
    assert (bu.seq, bu.mhtime, bu.len, bu.mhtype) == (0xA1B2, 105, len(m.encode(msg)) // 8 - 1, 5)
    assert bu.flags.A and bu.flags.K and not bu.flags.H and not bu.flags.L
    assert bu[MIP6OptAltCoA].acoa == HA_S
    assert (bu[MIP6OptNonceIndices].hni, bu[MIP6OptNonceIndices].coni, bu[MIP6OptNonceIndices].olen) == (3, 4, 4)
    assert bu[MIP6OptBindingAuthData].olen == 12
    assert bu[MIP6OptBindingAuthData].authenticator == int.from_bytes(AUTH, "big")
    assert bu.cksum == int.from_bytes(raw[-len(m.encode(msg)) + 4:][:2], "big")
    assert scapy_checksum(raw, MIP6MH_BU) == bu.cksum


def test_our_ba_with_rh2_dissected_by_scapy():
    msg = m.BindingAck(135, 0x0102, 0, key_mgmt=True, options=(BindingRefreshAdvice(9), BindingAuthData(AUTH)))
    raw = ours(msg, CN, COA, rh2_address=HOME)
    sp = IPv6(raw)
    rh = sp[IPv6ExtHdrRouting]
    assert (rh.type, rh.segleft, rh.addresses) == (2, 1, [HOME_S])
    ba = sp[MIP6MH_BA]
    assert (ba.status, ba.seq, ba.mhtime) == (135, 0x0102, 0)
    assert ba.flags.K
    assert ba[MIP6OptBRAdvice].rinter == 9
    assert ba[MIP6OptBindingAuthData].authenticator == int.from_bytes(AUTH, "big")
    assert scapy_checksum(raw, MIP6MH_BA) == ba.cksum


@pytest.mark.parametrize(
    "msg,cls,fields",
    [
        (m.HomeTestInit(COOKIE), MIP6MH_HoTI, {"cookie": COOKIE}),
        (m.CareofTestInit(COOKIE), MIP6MH_CoTI, {"cookie": COOKIE}),
        (m.HomeTest(0x1234, COOKIE, TOKEN), MIP6MH_HoT, {"index": 0x1234, "cookie": COOKIE, "token": TOKEN}),
        (m.CareofTest(7, COOKIE, TOKEN), MIP6MH_CoT, {"index": 7, "cookie": COOKIE, "token": TOKEN}),
        (m.BindingError(2, HOME), MIP6MH_BE, {"status": 2, "ha": HOME_S}),
        (m.BindingRefreshRequest(), MIP6MH_BRR, {}),
    ],
    ids=lambda v: getattr(v, "__name__", None) or type(v).__name__,
)
def test_our_other_messages_dissected_by_scapy(msg, cls, fields):
    raw = ours(msg, CN, HOME)
    layer = IPv6(raw)[cls]
    assert layer.mhtype == msg.MH_TYPE
    for name, value in fields.items():
        assert getattr(layer, name) == value, name
    assert scapy_checksum(raw, cls) == layer.cksum


def test_our_home_registration_dissected_by_scapy():
    msg = m.BindingUpdate(5, 100, ack=True, home=True,
                          options=(ReplayProtection(0xCAFE), MobilityMessageAuth(1, 0x01020304, AUTH)))
    raw = ours(msg, COA, HA, home_address=HOME)
    bu = IPv6(raw)[MIP6MH_BU]
    assert bu.flags.H and bu.flags.A
    assert bu[MIP6OptReplayProtection].timestamp == 0xCAFE
    auth = bu[MIP6OptMsgAuth]
    assert (auth.subtype, auth.mspi, auth.authdata, auth.olen) == (1, 0x01020304, AUTH, 17)
    assert scapy_checksum(raw, MIP6MH_BU) == bu.cksum


@settings(max_examples=40, deadline=None)
@given(
    seq=st.integers(0, 0xFFFF),
    lifetime=st.integers(0, 0xFFFF),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    auth=st.binary(min_size=12, max_size=12),
    hao=st.booleans(),
)
def test_property_bu_agrees_with_scapy_both_ways(seq, lifetime, flags, auth, hao):
    msg = m.BindingUpdate(seq, lifetime, *flags, options=(BindingAuthData(auth),))
    raw = ours(msg, COA, CN, home_address=HOME if hao else None)
    bu = IPv6(raw)[MIP6MH_BU]
    assert (bu.seq, bu.mhtime) == (seq, lifetime)
    assert (bool(bu.flags.A), bool(bu.flags.H), bool(bu.flags.L), bool(bu.flags.K)) == flags
    assert bu[MIP6OptBindingAuthData].authenticator == int.from_bytes(auth, "big")
    assert scapy_checksum(raw, MIP6MH_BU) == bu.cksum
    letters = "".join(c for c, on in zip("AHLK", flags) if on)
    base = with_hao(COA_S, CN_S, HOME_S) if hao else IPv6(src=COA_S, dst=CN_S)
    theirs = bytes(base / MIP6MH_BU(seq=seq, flags=letters, mhtime=lifetime, options=[bad_opt(auth)]))
    assert theirs == raw
