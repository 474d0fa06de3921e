"""Wire codec (RFC 6275 6.1-6.4, RFC 4285 options): exact encodings of every message and option,
the alignment rules of docs/protocol.md section 2, the Home Address option, the type 2 routing header,
the Mobility Header checksum pseudo-header, decoding errors, and hypothesis properties
(round trip; arbitrary or mutated input raises nothing but CodecError)."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from testbed.mip6 import messages as m
from testbed.mip6 import packet
from testbed.mip6.constants import (
    IPPROTO_DSTOPTS,
    IPPROTO_IPV6,
    IPPROTO_MH,
    IPPROTO_NONE,
    IPPROTO_ROUTING,
    MHType,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.options import (
    AlternateCoA,
    BindingAuthData,
    BindingRefreshAdvice,
    MobilityMessageAuth,
    NonceIndices,
    ReplayProtection,
    UnknownOption,
)

HOME = ipaddress.IPv6Address("2001:db8:0:1::1234").packed
COA = ipaddress.IPv6Address("2001:db8:0:2::1234").packed
CN = ipaddress.IPv6Address("2001:db8:0:3::1").packed
COOKIE = bytes.fromhex("0102030405060708")
TOKEN = bytes.fromhex("a1a2a3a4a5a6a7a8")
AUTH = bytes(range(0xB0, 0xBC))


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def rfc1071(data: bytes) -> int:
    """Independent Internet checksum (RFC 1071), for checking ours."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_checksum(src: bytes, dst: bytes, mh: bytes) -> int:
    zeroed = mh[:4] + b"\0\0" + mh[6:]
    return rfc1071(src + dst + struct.pack("!I", len(mh)) + b"\0\0\0" + bytes([IPPROTO_MH]) + zeroed)


# ------------------------------------------------------------------ every message type, exact octets

MESSAGES = [
    pytest.param(m.BindingRefreshRequest(), "3b 00 00 00 0000 0000", id="BRR"),
    pytest.param(m.HomeTestInit(COOKIE), "3b 01 01 00 0000 0000 0102030405060708", id="HoTI"),
    pytest.param(m.CareofTestInit(COOKIE), "3b 01 02 00 0000 0000 0102030405060708", id="CoTI"),
    pytest.param(
        m.HomeTest(0x1234, COOKIE, TOKEN), "3b 02 03 00 0000 1234 0102030405060708 a1a2a3a4a5a6a7a8", id="HoT"
    ),
    pytest.param(
        m.CareofTest(0xFFFF, COOKIE, TOKEN), "3b 02 04 00 0000 ffff 0102030405060708 a1a2a3a4a5a6a7a8", id="CoT"
    ),
    pytest.param(
        m.BindingUpdate(0xABCD, 0x0102, ack=True, home=True, link_local=True, key_mgmt=True),
        "3b 01 05 00 0000 abcd f000 0102 01020000",
        id="BU-all-flags",
    ),
    pytest.param(m.BindingUpdate(1, 0, ack=True), "3b 01 05 00 0000 0001 8000 0000 01020000", id="BU-A"),
    pytest.param(m.BindingUpdate(1, 0, home=True), "3b 01 05 00 0000 0001 4000 0000 01020000", id="BU-H"),
    pytest.param(m.BindingUpdate(1, 0, link_local=True), "3b 01 05 00 0000 0001 2000 0000 01020000", id="BU-L"),
    pytest.param(m.BindingUpdate(1, 0, key_mgmt=True), "3b 01 05 00 0000 0001 1000 0000 01020000", id="BU-K"),
    pytest.param(m.BindingAck(135, 0x0102, 0x0304, key_mgmt=True), "3b 01 06 00 0000 87 80 0102 0304 01020000", id="BA"),
    pytest.param(m.BindingAck(0, 1, 2), "3b 01 06 00 0000 00 00 0001 0002 01020000", id="BA-noK"),
    pytest.param(
        m.BindingError(2, HOME), "3b 02 07 00 0000 02 00 20010db8000000010000000000001234", id="BE"
    ),
]


@pytest.mark.parametrize("msg,wire", MESSAGES)
def test_message_encoding_is_exact(msg, wire):
    assert m.encode(msg) == h(wire)


@pytest.mark.parametrize("msg,wire", MESSAGES)
def test_message_decoding_gives_the_fields_back(msg, wire):
    got = m.decode(h(wire))
    assert got == msg
    assert type(got).MH_TYPE == h(wire)[2]
    assert got.raw == h(wire)


def test_payload_proto_is_written():
    assert m.encode(m.BindingRefreshRequest(), payload_proto=IPPROTO_NONE)[0] == 59
    assert m.encode(m.BindingRefreshRequest(), payload_proto=6)[0] == 6


def test_unknown_mh_type_is_kept_for_binding_error_2():
    wire = h("3b 01 2a 00 0000 0102030405060708090a")
    got = m.decode(wire)
    assert isinstance(got, m.UnknownMessage)
    assert got.mh_type == 42 and got.body == wire[6:] and got.raw == wire
    assert m.encode(got) == wire


def test_decode_ignores_octets_after_header_len():
    wire = h("3b 00 00 00 0000 0000")
    got = m.decode(wire + b"\xff" * 9)
    assert got == m.BindingRefreshRequest() and got.raw == wire


# ------------------------------------------------------------------ every option, exact octets and alignment


def test_bu_with_bad_is_the_spec_32_octet_shape():
    # docs/protocol.md 2: 12 fixed octets + PadN(6) + BAD(14) = 32 octets, Header Len 3; BAD at 8n+2.
    mh = m.encode(m.BindingUpdate(1, 105, ack=True, options=(BindingAuthData(AUTH),)))
    assert mh == h("3b 03 05 00 0000 0001 8000 0069 0104 00000000 050c") + AUTH
    assert len(mh) == 32 and mh[1] == 3
    assert mh.index(b"\x05\x0c") % 8 == 2
    assert mh.endswith(AUTH)  # BAD is last


def test_ba_with_bad_has_the_same_shape():
    mh = m.encode(m.BindingAck(135, 9, 0, options=(BindingAuthData(AUTH),)))
    assert mh == h("3b 03 06 00 0000 87 00 0009 0000 0104 00000000 050c") + AUTH


def test_binding_refresh_advice_2n():
    mh = m.encode(m.BindingAck(0, 1, 2, options=(BindingRefreshAdvice(0x0506),)))
    assert mh == h("3b 01 06 00 0000 00 00 0001 0002 0202 0506")


def test_alternate_coa_8n_plus_6():
    mh = m.encode(m.BindingUpdate(1, 2, options=(AlternateCoA(COA),)))
    assert mh == h("3b 03 05 00 0000 0001 0000 0002 0100 0310") + COA  # PadN of 2 octets, then 8n+6
    assert mh.index(b"\x03\x10") == 14


def test_nonce_indices_2n_then_bad_8n_plus_2_needs_no_padding():
    mh = m.encode(m.BindingUpdate(1, 2, options=(NonceIndices(0x0A0B, 0x0C0D), BindingAuthData(AUTH))))
    assert mh == h("3b 03 05 00 0000 0001 0000 0002 0404 0a0b 0c0d 050c") + AUTH


def test_nonce_indices_after_an_odd_option_gets_pad1():
    opts = (UnknownOption(0x20, b"\x99"), NonceIndices(1, 2))
    mh = m.encode(m.BindingUpdate(1, 2, options=opts))
    assert mh == h("3b 02 05 00 0000 0001 0000 0002 2001 99 00 0404 0001 0002 0100")
    assert m.decode(mh).options == opts


def test_altcoa_nonce_indices_bad_all_aligned():
    opts = (AlternateCoA(COA), NonceIndices(1, 2), BindingAuthData(AUTH))
    mh = m.encode(m.BindingUpdate(3, 4, options=opts))
    assert mh[14:16] == b"\x03\x10" and mh[32:34] == b"\x04\x04"
    assert mh[38:42] == h("0102 0000") and mh[42:44] == b"\x05\x0c"  # PadN(4) to reach 8n+2
    assert len(mh) == 56 and mh[1] == 6
    assert m.decode(mh).options == opts


def test_mobility_message_auth_rfc4285_is_last_and_ends_the_header():
    opt = MobilityMessageAuth(1, 0x11223344, AUTH)
    mh = m.encode(m.BindingUpdate(1, 2, ack=True, home=True, options=(opt,)))
    # Pad1 to 13 = 8n+5 (a case of RFC 4285's 4n+1); type 9, length 17, subtype, SPI, authenticator.
    assert mh == h("3b 03 05 00 0000 0001 c000 0002 00 0911 01 11223344") + AUTH
    assert m.decode(mh).options == (opt,)


def test_replay_protection_8n_plus_2_then_message_auth():
    opts = (ReplayProtection(0x0102030405060708), MobilityMessageAuth(1, 7, AUTH))
    mh = m.encode(m.BindingUpdate(1, 2, home=True, options=opts))
    assert mh[12:18] == h("0104 00000000") and mh[18:28] == h("0a08 0102030405060708")
    assert mh[28] == 0 and mh[29:31] == h("0911")  # Pad1 to reach 8n+5
    assert len(mh) == 48
    assert m.decode(mh).options == opts


def test_pad1_and_padn_are_skipped_and_not_returned():
    # Pad1, PadN(1), Nonce Indices, then two Pad1 ending the 24 octets.
    wire = h("3b 02 05 00 0000 0001 0000 0002 00 0101 00 0404 0001 0002 00 00")
    assert len(wire) == 24
    got = m.decode(wire)
    assert got.options == (NonceIndices(1, 2),)
    assert got.trailing_pad == 2


def test_padding_after_bad_is_visible_so_engines_can_refuse_it():
    # "BAD must be the last option": padding after it is reported, options after it keep their order.
    after_pad = h("3b 04 05 00 0000 0001 0000 0002 0104 00000000 050c") + AUTH + h("0106 000000000000")
    got = m.decode(after_pad)
    assert got.options == (BindingAuthData(AUTH),) and got.trailing_pad == 8
    after_opt = h("3b 04 05 00 0000 0001 0000 0002 0104 00000000 050c") + AUTH + h("0404 0001 0002 0100")
    got = m.decode(after_opt)
    assert got.options == (BindingAuthData(AUTH), NonceIndices(1, 2)) and got.trailing_pad == 2


def test_duplicate_options_are_returned_for_the_engine_to_drop():
    wire = h("3b 02 05 00 0000 0001 0000 0002 0404 0001 0002 0404 0003 0004 0100")
    assert m.decode(wire).options == (NonceIndices(1, 2), NonceIndices(3, 4))


def test_unknown_option_is_kept():
    wire = h("3b 01 05 00 0000 0001 0000 0002 2a02 abcd")
    assert m.decode(wire).options == (UnknownOption(42, h("abcd")),)


# ------------------------------------------------------------------ decoding errors


@pytest.mark.parametrize(
    "wire,why",
    [
        ("3b 00 05 00 0000 00", "shorter than 8"),
        ("3b 01 05 00 0000 0001 0000", "Header Len says"),
        ("3b 00 05 00 0000 0001", "needs 12 octets"),
        ("3b 00 07 00 0000 0000", "needs 24 octets"),
        ("3b 01 01 00 0000 0000 01020304050607", "Header Len says"),
        ("3b 01 05 00 0000 0001 0000 0002 0000 0004", "truncated option header"),
        ("3b 01 05 00 0000 0001 0000 0002 0403 0102", "overruns"),
        ("3b 01 05 00 0000 0001 0000 0002 0402 0102", "length 2, expected 4"),
        ("3b 03 05 00 0000 0001 0000 0002 0104 00000000 050b 0102030405060708090a0b 00", "expected 12"),
        ("3b 03 05 00 0000 0001 0000 0002 0100 030f 0102030405060708090a0b0c0d0e0f 00", "expected 16"),
        ("3b 01 06 00 0000 00 00 0001 0002 0203 0506", "overruns"),
        ("3b 02 06 00 0000 00 00 0001 0002 0a07 01020304050607 000000", "expected 8"),
        ("3b 01 05 00 0000 0001 0000 0002 0902 0102", "too short"),
    ],
)
def test_malformed_mobility_headers_raise_codec_error(wire, why):
    with pytest.raises(CodecError, match=why):
        m.decode(h(wire))


# ------------------------------------------------------------------ encoding errors


@pytest.mark.parametrize(
    "msg",
    [
        m.BindingUpdate(0x10000, 1),
        m.BindingUpdate(1, -1),
        m.BindingAck(256, 1, 1),
        m.BindingAck(0, 1, 0x10000),
        m.HomeTestInit(b"short"),
        m.HomeTest(1, COOKIE, b"short"),
        m.CareofTest(0x10000, COOKIE, TOKEN),
        m.BindingError(1, b"short"),
        m.BindingUpdate(1, 1, options=(BindingAuthData(b"short"),)),
        m.BindingUpdate(1, 1, options=(AlternateCoA(b"short"),)),
        m.BindingUpdate(1, 1, options=(UnknownOption(1, b""),)),
        m.BindingUpdate(1, 1, options=(UnknownOption(300, b""),)),
        m.BindingUpdate(1, 1, options=tuple(AlternateCoA(COA) for _ in range(120))),
    ],
    ids=lambda msg: type(msg).__name__,
)
def test_unencodable_messages_raise_codec_error(msg):
    with pytest.raises(CodecError):
        m.encode(msg)


# Values that do not fit their wire fields. The codec's contract (errors.CodecError: "cannot be
# decoded (or encoded)") is CodecError; today these leak struct.error / ValueError from struct.pack
# and bytes(): options._option_bytes, messages._fixed_part (BE status, unknown MH type) and
# messages.encode (payload_proto) lack the range checks messages._u16 does for BU/BA fields.
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: m.encode(m.BindingAck(0, 1, 1, options=(BindingRefreshAdvice(0x10000),))), id="BRA"),
        pytest.param(lambda: m.encode(m.BindingUpdate(1, 1, options=(NonceIndices(-1, 0),))), id="NI"),
        pytest.param(lambda: m.encode(m.BindingUpdate(1, 1, options=(ReplayProtection(1 << 64),))), id="RP"),
        pytest.param(lambda: m.encode(m.BindingUpdate(1, 1, options=(MobilityMessageAuth(1, 1 << 32, AUTH),))),
                     id="MMA-spi"),
        pytest.param(lambda: m.encode(m.BindingUpdate(1, 1, options=(MobilityMessageAuth(256, 1, AUTH),))),
                     id="MMA-subtype"),
        pytest.param(lambda: m.encode(m.BindingUpdate(1, 1, options=(MobilityMessageAuth(1, 1, bytes(251)),))),
                     id="MMA-too-long"),
        pytest.param(lambda: m.encode(m.BindingError(256, HOME)), id="BE-status"),
        pytest.param(lambda: m.encode(m.UnknownMessage(256, bytes(2))), id="unknown-type"),
        pytest.param(lambda: m.encode(m.BindingRefreshRequest(), payload_proto=256), id="payload-proto"),
    ],
)
def test_out_of_range_fields_raise_codec_error_not_struct_error(make):
    with pytest.raises(CodecError):
        make()


# ------------------------------------------------------------------ Home Address option, RH2, checksum


def _bu_bytes() -> bytes:
    return m.encode(m.BindingUpdate(1, 105, ack=True, options=(BindingAuthData(AUTH),)))


def test_home_address_option_layout_and_8n_plus_6():
    mh = _bu_bytes()
    raw = packet.build_packet(COA, CN, IPPROTO_MH, mh, home_address=HOME)
    assert raw[6] == IPPROTO_DSTOPTS
    dst = raw[40:64]
    assert dst[:2] == bytes([IPPROTO_MH, 2])  # next header, 24 octets
    assert dst[2:6] == h("0102 0000")  # PadN(4)
    assert dst[6:8] == h("c9 10") and dst[8:24] == HOME  # type 201 at 8n+6, length 16
    assert struct.unpack("!H", raw[4:6])[0] == 24 + len(mh)
    pkt = packet.parse_packet(raw)
    assert (pkt.src, pkt.dst, pkt.home_address, pkt.rh2_address) == (COA, CN, HOME, None)
    assert pkt.mh_source == HOME and pkt.final_destination == CN
    assert pkt.next_header == IPPROTO_MH and pkt.payload[6:] == mh[6:]


def test_type2_routing_header_layout():
    mh = m.encode(m.BindingAck(0, 1, 105, options=(BindingAuthData(AUTH),)))
    raw = packet.build_packet(CN, COA, IPPROTO_MH, mh, rh2_address=HOME)
    assert raw[6] == IPPROTO_ROUTING
    assert raw[40:48] == bytes([IPPROTO_MH, 2, 2, 1, 0, 0, 0, 0])  # len 2, type 2, segments left 1
    assert raw[48:64] == HOME
    pkt = packet.parse_packet(raw)
    assert (pkt.rh2_address, pkt.routing_type, pkt.segments_left, pkt.home_address) == (HOME, 2, 1, None)
    assert pkt.final_destination == HOME and pkt.mh_source == CN


def test_routing_header_comes_before_destination_options():
    raw = packet.build_packet(COA, CN, IPPROTO_MH, _bu_bytes(), home_address=HOME, rh2_address=COA)
    assert raw[6] == IPPROTO_ROUTING and raw[40] == IPPROTO_DSTOPTS and raw[64] == IPPROTO_MH
    pkt = packet.parse_packet(raw)
    assert pkt.home_address == HOME and pkt.rh2_address == COA


def test_checksum_pseudo_header_uses_home_address_and_rh2_address():
    mh = _bu_bytes()
    with_hao = packet.build_packet(COA, CN, IPPROTO_MH, mh, home_address=HOME)
    got = struct.unpack("!H", with_hao[-32 + 4 : -32 + 6])[0]
    assert got == pseudo_checksum(HOME, CN, mh)
    assert got != pseudo_checksum(COA, CN, mh)  # not the outer source

    ba = m.encode(m.BindingAck(0, 1, 105, options=(BindingAuthData(AUTH),)))
    with_rh2 = packet.build_packet(CN, COA, IPPROTO_MH, ba, rh2_address=HOME)
    got = struct.unpack("!H", with_rh2[-32 + 4 : -32 + 6])[0]
    assert got == pseudo_checksum(CN, HOME, ba)
    assert got != pseudo_checksum(CN, COA, ba)  # not the outer destination

    plain = packet.build_packet(HOME, CN, IPPROTO_MH, mh)
    assert struct.unpack("!H", plain[44:46])[0] == pseudo_checksum(HOME, CN, mh)
    assert packet.mh_checksum(HOME, CN, mh) == pseudo_checksum(HOME, CN, mh)
    assert packet.with_mh_checksum(HOME, CN, mh) == plain[40:]


def _replace(raw: bytes, at: int, new: bytes) -> bytes:
    return raw[:at] + new + raw[at + len(new) :]


def test_checksum_ok_follows_the_pseudo_header_addresses():
    hao = packet.build_packet(COA, CN, IPPROTO_MH, _bu_bytes(), home_address=HOME)
    assert packet.mh_checksum_ok(packet.parse_packet(hao))
    # The outer source is not in the pseudo-header when a Home Address option is present ...
    assert packet.mh_checksum_ok(packet.parse_packet(_replace(hao, 8, HOME)))
    # ... the home address is.
    assert not packet.mh_checksum_ok(packet.parse_packet(_replace(hao, 48, COA)))
    assert not packet.mh_checksum_ok(packet.parse_packet(_replace(hao, 24, HOME)))

    rh2 = packet.build_packet(CN, COA, IPPROTO_MH, _bu_bytes(), rh2_address=HOME)
    assert packet.mh_checksum_ok(packet.parse_packet(rh2))
    assert packet.mh_checksum_ok(packet.parse_packet(_replace(rh2, 24, CN)))  # outer dst not used
    assert not packet.mh_checksum_ok(packet.parse_packet(_replace(rh2, 48, COA)))

    flipped = bytearray(hao)
    flipped[-1] ^= 0x01
    assert not packet.mh_checksum_ok(packet.parse_packet(bytes(flipped)))


def test_checksum_ok_on_a_too_short_payload_is_false():
    raw = packet.build_packet(HOME, CN, IPPROTO_MH, b"\x3b\x00\x00")
    assert not packet.mh_checksum_ok(packet.parse_packet(raw))


def test_internet_checksum_matches_rfc1071():
    for data in (b"", b"\x01", b"\xff\xff", bytes(range(256)), b"\x12\x34\x56"):
        assert packet.internet_checksum(data) == rfc1071(data)


def test_ipv6_in_ipv6_and_hop_by_hop_are_walked():
    inner = packet.build_packet(HOME, CN, IPPROTO_MH, m.encode(m.HomeTestInit(COOKIE)))
    outer = packet.build_packet(COA, CN, IPPROTO_IPV6, inner, hop_limit=7, flow_label=0xABCDE)
    pkt = packet.parse_packet(outer)
    assert pkt.next_header == IPPROTO_IPV6 and pkt.payload == inner and pkt.hop_limit == 7
    assert outer[1:4] == h("0abcde")
    inner_pkt = packet.parse_packet(pkt.payload)
    assert inner_pkt.src == HOME and m.decode(inner_pkt.payload) == m.HomeTestInit(COOKIE)

    mh = m.encode(m.BindingRefreshRequest())
    hbh = bytes([IPPROTO_MH, 0]) + h("0104 00000000")
    raw = struct.pack("!IHBB16s16s", 6 << 28, len(hbh) + len(mh), 0, 64, CN, HOME) + hbh + mh + b"\xee" * 5
    pkt = packet.parse_packet(raw)
    assert pkt.next_header == IPPROTO_MH and pkt.payload == mh  # link padding after the payload ignored


def _ipv6(nh: int, body: bytes, plen: int | None = None, version: int = 6) -> bytes:
    return struct.pack("!IHBB16s16s", version << 28, len(body) if plen is None else plen, nh, 64, COA, CN) + body


HAO_OPT = h("c910") + HOME


@pytest.mark.parametrize(
    "raw,why",
    [
        (b"\x60" + bytes(38), "shorter than 40"),
        (_ipv6(59, b"", version=4), "version 4"),
        (_ipv6(59, b"abc", plen=4), "exceeds"),
        (_ipv6(60, bytes([135, 0, 1, 2])), "truncated extension header"),
        (_ipv6(60, bytes([135, 1]) + bytes(6)), "overruns the packet"),
        (_ipv6(44, bytes(8)), "fragmented"),
        (_ipv6(43, bytes([43, 0, 0, 0]) + bytes(4) + bytes([59, 0, 0, 0]) + bytes(4)), "more than one routing"),
        (_ipv6(43, bytes([59, 4, 2, 1]) + bytes(36)), "type 2 routing header of length 4"),
        (_ipv6(60, bytes([59, 2]) + h("0102 0000") + h("c90f") + HOME[:15] + b"\0"), "Home Address option of length"),
        (_ipv6(60, bytes([59, 5]) + h("0102 0000") + HAO_OPT + h("0104 00000000") + HAO_OPT), "more than one Home"),
        (_ipv6(60, bytes([60, 2]) + h("0102 0000") + HAO_OPT + bytes([59, 2]) + h("0102 0000") + HAO_OPT),
         "more than one Home"),
        (_ipv6(60, bytes([59, 0]) + h("0102 0000 00 c9")), "truncated destination or hop-by-hop option"),
        (_ipv6(60, bytes([59, 0]) + h("0102 0000 0102")), "overruns its header"),
    ],
)
def test_malformed_ipv6_packets_raise_codec_error(raw, why):
    with pytest.raises(CodecError, match=why):
        packet.parse_packet(raw)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"src": b"short"},
        {"home_address": b"short"},
        {"rh2_address": b"short"},
        {"payload": bytes(0x10000)},
    ],
)
def test_build_packet_refuses_bad_arguments(kwargs):
    args = {"src": COA, "dst": CN, "next_header": 59, "payload": b""} | kwargs
    with pytest.raises(CodecError):
        packet.build_packet(**args)


# ------------------------------------------------------------------ hypothesis properties

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
addresses = st.binary(min_size=16, max_size=16)
options = st.one_of(
    st.builds(BindingRefreshAdvice, u16),
    st.builds(AlternateCoA, addresses),
    st.builds(NonceIndices, u16, u16),
    st.builds(BindingAuthData, st.binary(min_size=12, max_size=12)),
    st.builds(MobilityMessageAuth, u8, st.integers(0, 2**32 - 1), st.binary(max_size=24)),
    st.builds(ReplayProtection, st.integers(0, 2**64 - 1)),
    st.builds(UnknownOption, st.integers(11, 255), st.binary(max_size=20)),
)
option_tuples = st.lists(options, max_size=4).map(tuple)
cookies = st.binary(min_size=8, max_size=8)
unknown_bodies = st.integers(0, 4).flatmap(lambda k: st.binary(min_size=2 + 8 * k, max_size=2 + 8 * k))
mobility_messages = st.one_of(
    st.builds(m.BindingRefreshRequest, options=option_tuples),
    st.builds(m.HomeTestInit, cookies, options=option_tuples),
    st.builds(m.CareofTestInit, cookies, options=option_tuples),
    st.builds(m.HomeTest, u16, cookies, cookies, options=option_tuples),
    st.builds(m.CareofTest, u16, cookies, cookies, options=option_tuples),
    st.builds(m.BindingUpdate, u16, u16, st.booleans(), st.booleans(), st.booleans(), st.booleans(),
              options=option_tuples),
    st.builds(m.BindingAck, u8, u16, u16, st.booleans(), options=option_tuples),
    st.builds(m.BindingError, u8, addresses, options=option_tuples),
    st.builds(m.UnknownMessage, st.integers(8, 255), unknown_bodies),
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _walk_options(mh: bytes, start: int) -> list[tuple[int, int]]:
    """(offset, type) of every non-padding option; asserts padding carries zeros only."""
    found, pos = [], start
    while pos < len(mh):
        if mh[pos] == 0:
            pos += 1
            continue
        olen = mh[pos + 1]
        if mh[pos] == 1:
            assert mh[pos + 2 : pos + 2 + olen] == bytes(olen)
        else:
            found.append((pos, mh[pos]))
        pos += 2 + olen
    assert pos == len(mh)
    return found


_FIXED_END = {0: 8, 1: 16, 2: 16, 3: 24, 4: 24, 5: 12, 6: 12, 7: 24}


@FAST
@given(mobility_messages, st.sampled_from([IPPROTO_NONE, 6, 17]))
def test_property_message_round_trip(msg, payload_proto):
    wire = m.encode(msg, payload_proto=payload_proto)
    assert len(wire) % 8 == 0 and wire[1] == len(wire) // 8 - 1
    assert wire[0] == payload_proto and wire[4:6] == b"\0\0"
    got = m.decode(wire)
    assert got == msg
    assert got.raw == wire
    assert m.encode(got, payload_proto=payload_proto) == wire
    if not isinstance(msg, m.UnknownMessage):
        positions = _walk_options(wire, _FIXED_END[wire[2]])
        assert len(positions) == len(msg.options)
        for (offset, otype), opt in zip(positions, msg.options):
            x, y = opt.ALIGN
            assert (offset - y) % x == 0, (opt, offset)


@FAST
@given(mobility_messages, addresses, addresses, st.none() | addresses, st.none() | addresses, u8,
       st.integers(0, 2**20 - 1))
def test_property_packet_round_trip(msg, src, dst, home, rh2, hop_limit, flow):
    mh = m.encode(msg)
    raw = packet.build_packet(src, dst, IPPROTO_MH, mh, home_address=home, rh2_address=rh2,
                              hop_limit=hop_limit, flow_label=flow)
    pkt = packet.parse_packet(raw)
    assert (pkt.src, pkt.dst, pkt.hop_limit, pkt.home_address, pkt.rh2_address) == (src, dst, hop_limit, home, rh2)
    assert pkt.next_header == IPPROTO_MH
    assert pkt.payload[:4] == mh[:4] and pkt.payload[6:] == mh[6:]
    assert packet.mh_checksum_ok(pkt)
    expected = pseudo_checksum(home or src, rh2 or dst, mh)
    assert struct.unpack("!H", pkt.payload[4:6])[0] == expected
    assert m.decode(pkt.payload) == msg


def _decode_only_codec_errors(data: bytes) -> None:
    try:
        m.decode(data)
    except CodecError:
        pass


def _parse_only_codec_errors(data: bytes) -> None:
    try:
        pkt = packet.parse_packet(data)
    except CodecError:
        return
    packet.mh_checksum_ok(pkt)
    if pkt.next_header == IPPROTO_MH:
        _decode_only_codec_errors(pkt.payload)
    elif pkt.next_header == IPPROTO_IPV6:
        _parse_only_codec_errors(pkt.payload)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_property_arbitrary_bytes_decode_raises_only_codec_error(data):
    _decode_only_codec_errors(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=2, max_size=96), st.sampled_from(list(range(8)) + [42]), u8)
def test_property_arbitrary_option_area_raises_only_codec_error(body, mh_type, _):
    # A plausible header so decoding reaches the options.
    total = (len(body) + 6 + 7) // 8 * 8
    data = bytes([59, total // 8 - 1, mh_type, 0, 0, 0]) + body + bytes(total - 6 - len(body))
    _decode_only_codec_errors(data)


ext_chain_types = st.sampled_from([0, 41, 43, 44, 59, 60, 135, 58])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=160), ext_chain_types, st.booleans())
def test_property_arbitrary_bytes_parse_raises_only_codec_error(body, nh, honest_length):
    _parse_only_codec_errors(body)
    plen = len(body) if honest_length else len(body) ^ 0x0F
    _parse_only_codec_errors(_ipv6(nh, body, plen=plen & 0xFFFF))


valid_packets = st.builds(
    lambda msg, home, rh2, tunnel: _maybe_tunnel(
        packet.build_packet(COA, CN, IPPROTO_MH, m.encode(msg), home_address=home, rh2_address=rh2), tunnel
    ),
    mobility_messages,
    st.none() | addresses,
    st.none() | addresses,
    st.booleans(),
)


def _maybe_tunnel(raw: bytes, tunnel: bool) -> bytes:
    return packet.build_packet(HOME, COA, IPPROTO_IPV6, raw) if tunnel else raw


def _length_offsets(raw: bytes) -> list[int]:
    """Offsets of every length field: IPv6 payload length, extension header lengths, MH Header Len,
    option lengths (following the chain as the packet was built)."""
    offsets, base = [], 0
    while True:
        offsets += [base + 4, base + 5]
        nh, pos = raw[base + 6], base + 40
        while nh in (43, 60):
            offsets.append(pos + 1)
            nh, pos = raw[pos], pos + (raw[pos + 1] + 1) * 8
        if nh == IPPROTO_IPV6:
            base = pos
            continue
        break
    offsets.append(pos + 1)  # MH Header Len
    fixed = _FIXED_END.get(raw[pos + 2])
    if fixed is not None:
        q = pos + fixed
        while q < len(raw):
            if raw[q] == 0:
                q += 1
                continue
            offsets.append(q + 1)
            q += 2 + raw[q + 1]
    return offsets


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_packets, st.data())
def test_property_mutated_packets_raise_only_codec_error(raw, data):
    cut = data.draw(st.integers(0, len(raw) - 1), label="truncate at")
    _parse_only_codec_errors(raw[:cut])
    bit = data.draw(st.integers(0, len(raw) * 8 - 1), label="flip bit")
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    _parse_only_codec_errors(bytes(flipped))
    where = data.draw(st.sampled_from(_length_offsets(raw)), label="length field")
    value = data.draw(u8, label="new length")
    changed = bytearray(raw)
    changed[where] = value
    _parse_only_codec_errors(bytes(changed))
    _parse_only_codec_errors(bytes(changed[:cut]))


@settings(max_examples=300, deadline=None)
@given(mobility_messages, st.data())
def test_property_mutated_mobility_headers_raise_only_codec_error(msg, data):
    wire = m.encode(msg)
    assume(len(wire) > 1)
    _decode_only_codec_errors(wire[: data.draw(st.integers(0, len(wire) - 1))])
    pos = data.draw(st.integers(0, len(wire) - 1))
    changed = bytearray(wire)
    changed[pos] = data.draw(u8)
    _decode_only_codec_errors(bytes(changed))
    changed[1] = data.draw(u8)  # Header Len
    _decode_only_codec_errors(bytes(changed) + data.draw(st.binary(max_size=24)))


def test_mh_type_constants_match_rfc6275():
    assert [t.value for t in (MHType.BRR, MHType.HOTI, MHType.COTI, MHType.HOT, MHType.COT, MHType.BU,
                              MHType.BA, MHType.BE)] == list(range(8))


@pytest.mark.parametrize(
    "nh, options, unknown",
    [
        (60, h("1e02 0000 0100"), None),  # action 00: skipped
        (60, h("7e02 0000 0100"), (42, 1)),  # 01
        (60, h("be02 0000 0100"), (42, 2)),  # 10
        (60, h("fe02 0000 0100"), (42, 3)),  # 11
        (0, h("0502 0000 0100"), None),  # Router Alert: known in hop-by-hop options
        (0, h("c910" + "00" * 16 + "0102 0000"), (42, 3)),  # a Home Address option is no hop-by-hop option
        (60, h("0100 0502 0000"), None),  # Router Alert in destination options: action 00, skipped
    ],
)
def test_unrecognised_extension_header_options_are_recorded_with_their_action(nh, options, unknown):
    """RFC 8200 4.2: the first option that must not be skipped, by offset and action bits."""
    header = bytes((59, (2 + len(options)) // 8 - 1)) + options
    p = packet.parse_packet(_ipv6(nh, header))
    assert p.unknown_option == unknown


# ------------------------------------------------------------------ the per-packet fast paths


@given(src=st.binary(min_size=16, max_size=16), dst=st.binary(min_size=16, max_size=16),
       home=st.binary(min_size=16, max_size=16), status=st.integers(0, 255), seq=st.integers(0, 0xFFFF),
       lifetime=st.integers(0, 0xFFFF), kbm=st.binary(min_size=20, max_size=20),
       next_header=st.sampled_from([135, 41, 58, 17, 0, 43, 44, 60, 59]), tail=st.binary(max_size=40))
def test_fast_paths_give_what_the_general_code_gives(src, dst, home, status, seq, lifetime, kbm, next_header, tail):
    """seal_ba = seal_bad(BindingAck), mh_packet = build_packet for a Mobility Header, and
    parse_packet's short cut for a Home Address option = the walk over the headers."""
    from testbed.mip6.packet import _walk, build_packet, mh_packet, parse_packet
    from testbed.mip6.sealing import seal_ba, seal_bad

    mh = seal_ba(status, seq, lifetime, kbm, src, dst)
    assert mh == seal_bad(m.BindingAck(status, seq, lifetime), kbm, src, dst)
    assert mh_packet(src, dst, mh) == build_packet(src, dst, IPPROTO_MH, mh)
    assert mh_packet(src, dst, mh, home) == build_packet(src, dst, IPPROTO_MH, mh, rh2_address=home)
    packet = build_packet(src, dst, IPPROTO_MH, mh, home_address=home)
    packet = packet[:40] + bytes((next_header,)) + packet[41:] + tail  # any next header, octets past the length
    walked = None
    try:
        walked = _walk(packet, packet[6], packet[7], packet[8:24], packet[24:40], 40 + struct.unpack("!H", packet[4:6])[0])
    except CodecError:
        pass
    if walked is None:
        with pytest.raises(CodecError):
            parse_packet(packet)
    else:
        assert parse_packet(packet) == walked


@given(seq=st.integers(0, 0xFFFF), lifetime=st.integers(0, 0xFFFF), flags=st.integers(0, 0xFFFF),
       options=st.sampled_from([(), (BindingAuthData(AUTH),), (NonceIndices(1, 2), BindingAuthData(AUTH))]))
def test_decoded_bu_equals_the_one_built_by_its_constructor(seq, lifetime, flags, options):
    from testbed.mip6.constants import BU_FLAG_A, BU_FLAG_H, BU_FLAG_K, BU_FLAG_L

    wire = m.encode(m.BindingUpdate(seq, lifetime, bool(flags & BU_FLAG_A), bool(flags & BU_FLAG_H),
                                    bool(flags & BU_FLAG_L), bool(flags & BU_FLAG_K), options))
    decoded = m.decode(wire)
    built = m.BindingUpdate(decoded.seq, decoded.lifetime, decoded.ack, decoded.home, decoded.link_local,
                            decoded.key_mgmt, decoded.options, decoded.raw, decoded.trailing_pad)
    assert type(decoded) is m.BindingUpdate and decoded == built and decoded.raw == built.raw == wire
    assert (decoded.seq, decoded.lifetime, decoded.options) == (seq, lifetime, options)
    with pytest.raises(AttributeError):  # still frozen
        decoded.seq = 1


@given(start=st.sampled_from([0, 12]), bad=st.binary(min_size=12, max_size=12),
       padn=st.sampled_from([bytes((1, 4, 0, 0, 0, 0)), bytes(6), bytes((0, 1, 3, 0, 0, 0))]))
def test_decode_options_short_cut_agrees_with_the_loop(start, bad, padn):
    """The PadN(6)-then-BAD layout decodes as the general loop decodes the same options with
    the padding spelt otherwise (Pad1s, Pad1 then PadN)."""
    from testbed.mip6.options import decode_options

    data = bytes(start) + padn + bytes((5, 12)) + bad
    assert decode_options(data, start, len(data)) == ((BindingAuthData(bad),), 0)
