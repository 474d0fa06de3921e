"""The correspondent node's Binding Update processing, rule by rule (docs/protocol.md section 4)."""

from __future__ import annotations

import dataclasses

import pytest
from engine_fixtures import ATTACKER, CN_PC, COA1, COA2, HOME, Disk, SeededRng, WithDisk, events, preconfigured

from testbed.mip6.cn import CorrespondentNode, record_key
from testbed.mip6.constants import IPPROTO_MH, IPPROTO_UDP, SECOND_NS, BAStatus, BEStatus
from testbed.mip6.crypto import (
    binding_management_key,
    careof_keygen_token,
    home_keygen_token,
)
from testbed.mip6.actions import Send
from testbed.mip6.events import Event
from testbed.mip6.messages import (
    BindingError,
    BindingUpdate,
    CareofTest,
    CareofTestInit,
    HomeTest,
    HomeTestInit,
    UnknownMessage,
    decode,
    encode,
)
from testbed.mip6.options import AlternateCoA, NonceIndices, BindingRefreshAdvice
from testbed.mip6.packet import build_packet, parse_packet
from testbed.mip6.sealing import bad_valid, seal_bad
from testbed.mip6.persistence import SeqRecord

CN = CN_PC


def sends(actions):
    return [parse_packet(a.packet) for a in actions if type(a) is Send]


def bas(actions):
    return [decode(p.payload) for p in sends(actions) if p.payload[2] == 6]


def pc_kbm(data, coa=COA1, dereg=False):
    ht = home_keygen_token(data.kcn, HOME, data.home_nonce)
    return binding_management_key(ht, None if dereg else careof_keygen_token(data.kcn, coa, data.careof_nonce))


def bu_packet(kbm, seq, *, coa=COA1, lifetime=105, ack=True, home_flag=False, options=(), seal=True, src=None, hao=True):
    bu = BindingUpdate(seq, lifetime, ack=ack, home=home_flag, options=tuple(options))
    mh = seal_bad(bu, kbm, coa, CN) if seal else encode(bu)
    if not hao:
        return build_packet(src or HOME, CN, IPPROTO_MH, mh)
    return build_packet(src or coa, CN, IPPROTO_MH, mh, home_address=HOME)


@pytest.fixture
def data():
    return preconfigured()


@pytest.fixture
def store():
    return Disk()


def make_cn(data, store, **kw):
    """A CN engine built from ``store``'s records, its actions carried out against it."""
    return WithDisk(CorrespondentNode(CN, peers=[data], records=dict(store), **kw), store)


@pytest.fixture
def cn(data, store):
    return make_cn(data, store, rng=SeededRng(5))


def key_of(cn):
    return record_key(cn._peers[HOME].data)


# ---------------------------------------------------------------- rule 1: parse


def test_rule1_malformed_packets_are_dropped_with_a_reason(cn):
    for junk in (b"", b"\x60" + bytes(10), bytes(60), b"\x60\x00\x00\x00\x00\x10\x87\x40" + bytes(40)):
        out = cn.receive(junk, 0)
        assert not sends(out)
        assert events(out, "drop") and events(out, "drop")[0]["reason"]


def test_rule1_duplicate_options_are_dropped_silently(cn, data):
    pkt = bu_packet(pc_kbm(data), 1, options=(BindingRefreshAdvice(1), BindingRefreshAdvice(2)))
    out = cn.receive(pkt, 0)
    assert not sends(out) and "duplicate" in events(out, "drop")[0]["reason"]
    assert cn.binding_for(HOME) is None


def test_rule1_anything_after_bad_is_dropped(cn, data):
    kbm = pc_kbm(data)
    mh = seal_bad(BindingUpdate(1, 105, ack=True), kbm, COA1, CN)
    # Append an option after BAD (and fix Header Len): the BAD is no longer last.
    tail = b"\x02\x02\x00\x01" + b"\x01\x02\x00\x00"
    mh2 = mh[:1] + bytes(((len(mh) + len(tail)) // 8 - 1,)) + mh[2:] + tail
    out = cn.receive(build_packet(COA1, CN, IPPROTO_MH, mh2, home_address=HOME), 0)
    assert not sends(out) and "not the last option" in events(out, "drop")[0]["reason"]
    # Padding after BAD is "anything after BAD" too.
    pad = b"\x01\x06" + bytes(6)
    mh3 = mh[:1] + bytes(((len(mh) + len(pad)) // 8 - 1,)) + mh[2:] + pad
    out = cn.receive(build_packet(COA1, CN, IPPROTO_MH, mh3, home_address=HOME), 0)
    assert not sends(out) and "padding follows" in events(out, "drop")[0]["reason"]


def test_rule1_bad_checksum_is_dropped(cn, data):
    pkt = bytearray(bu_packet(pc_kbm(data), 1))
    pkt[-20] ^= 0xFF
    out = cn.receive(bytes(pkt), 0)
    assert not sends(out) and "checksum" in events(out, "drop")[0]["reason"]


# ---------------------------------------------------------------- rule 2: H flag


def test_rule2_home_registration_to_a_cn(cn, data):
    kbm = pc_kbm(data)
    out = cn.receive(bu_packet(kbm, 1, home_flag=True, options=(NonceIndices(1, 2),)), 0)
    assert not sends(out) and events(out, "drop")
    out = cn.receive(bu_packet(kbm, 1, home_flag=True), 0)
    assert [b.status for b in bas(out)] == [BAStatus.HOME_REGISTRATION_NOT_SUPPORTED]
    cn.receive(bu_packet(kbm, 1), 0)
    out = cn.receive(bu_packet(kbm, 2, home_flag=True), 0)
    assert [b.status for b in bas(out)] == [BAStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED]


# ---------------------------------------------------------------- rule 3: authorisation


def test_rule3_precomputed_bu_without_bad_is_dropped_R5(cn):
    out = cn.receive(bu_packet(None, 1, seal=False), 0)
    assert not sends(out) and "R5" in events(out, "drop")[0]["reason"]
    assert cn.binding_for(HOME) is None


def test_rule3_nonce_indices_are_ignored_for_a_precomputed_peer_R6(cn, data):
    """The indices play no part: the authenticator over the MH as received verifies."""
    out = cn.receive(bu_packet(pc_kbm(data), 1, options=(NonceIndices(4242, 777),)), 0)
    assert [b.status for b in bas(out)] == [BAStatus.ACCEPTED]
    assert cn.binding_for(HOME).careof == COA1


def test_rule3_authenticator_mismatch_is_a_silent_drop(cn, data):
    wrong = pc_kbm(preconfigured(seed=99))
    out = cn.receive(bu_packet(wrong, 1), 0)
    assert not sends(out)  # no BA and no Binding Error
    assert "mismatch" in events(out, "drop")[0]["reason"]
    assert cn.disk.get(key_of(cn)) is None  # nothing stored for a forged BU


def test_rule3_alternate_coa_is_the_address_authenticated_and_bound(cn, data):
    bu = BindingUpdate(1, 105, ack=True, options=(AlternateCoA(COA2),))
    mh = seal_bad(bu, pc_kbm(data, COA2), COA2, CN)
    out = cn.receive(build_packet(COA1, CN, IPPROTO_MH, mh, home_address=HOME), 0)
    assert [b.status for b in bas(out)] == [BAStatus.ACCEPTED]
    assert cn.binding_for(HOME).careof == COA2


def test_rule3_return_routability_peer_needs_nonce_indices():
    cn = CorrespondentNode(CN, rng=SeededRng(3))
    out = cn.receive(bu_packet(bytes(20), 1), 0)
    assert not sends(out) and "Nonce Indices" in events(out, "drop")[0]["reason"]


def _rr_tokens(cn, now, coa=COA1):
    hot = decode(sends(cn.receive(build_packet(HOME, CN, IPPROTO_MH, encode(HomeTestInit(b"h" * 8))), now))[0].payload)
    cot = decode(sends(cn.receive(build_packet(coa, CN, IPPROTO_MH, encode(CareofTestInit(b"c" * 8))), now))[0].payload)
    assert type(hot) is HomeTest and type(cot) is CareofTest and hot.cookie == b"h" * 8 and cot.cookie == b"c" * 8
    return hot, cot


def test_rule3_return_routability_binding_and_expired_nonces():
    cn = CorrespondentNode(CN, rng=SeededRng(3))
    hot, cot = _rr_tokens(cn, 0)
    kbm = binding_management_key(hot.token, cot.token)
    ni = NonceIndices(hot.nonce_index, cot.nonce_index)
    out = cn.receive(bu_packet(kbm, 1, options=(ni,), lifetime=1000), 1 * SECOND_NS)
    (ba,) = bas(out)
    assert ba.status == BAStatus.ACCEPTED and ba.lifetime == 105  # RR lifetime capped at 420 s
    assert bad_valid(ba, kbm, COA1, CN)
    assert cn.binding_for(HOME).mechanism == "rr"
    # After MAX_NONCE_LIFETIME both indices have expired: BA 138 without BAD.
    out = cn.receive(bu_packet(kbm, 2, options=(ni,)), 241 * SECOND_NS)
    (ba,) = bas(out)
    assert ba.status == BAStatus.EXPIRED_NONCES and not ba.options
    # Fresh home nonce, stale care-of nonce: 137; the reverse: 136.
    hot2, _ = _rr_tokens(cn, 200 * SECOND_NS)
    out = cn.receive(bu_packet(kbm, 2, options=(NonceIndices(hot2.nonce_index, cot.nonce_index),)), 241 * SECOND_NS)
    assert [b.status for b in bas(out)] == [BAStatus.EXPIRED_CAREOF_NONCE_INDEX]
    out = cn.receive(bu_packet(kbm, 2, options=(NonceIndices(hot.nonce_index, hot2.nonce_index),)), 241 * SECOND_NS)
    assert [b.status for b in bas(out)] == [BAStatus.EXPIRED_HOME_NONCE_INDEX]


def test_rr_deregistration_uses_the_home_token_only():
    cn = CorrespondentNode(CN, rng=SeededRng(3))
    hot, cot = _rr_tokens(cn, 0)
    kbm = binding_management_key(hot.token, cot.token)
    cn.receive(bu_packet(kbm, 1, options=(NonceIndices(hot.nonce_index, cot.nonce_index),)), 0)
    dereg = binding_management_key(hot.token, None)
    out = cn.receive(bu_packet(dereg, 2, lifetime=0, options=(NonceIndices(hot.nonce_index, 0),)), 0)
    (ba,) = bas(out)
    assert ba.status == BAStatus.ACCEPTED and bad_valid(ba, dereg, COA1, CN)
    assert cn.binding_for(HOME) is None


def test_hoti_from_a_precomputed_peer_is_refused_R15(cn):
    out = cn.receive(build_packet(HOME, CN, IPPROTO_MH, encode(HomeTestInit(b"x" * 8))), 0)
    assert not sends(out) and "R15" in events(out, "drop")[0]["reason"]


def test_bu_computed_with_rr_tokens_is_not_accepted_from_a_precomputed_peer_R15(cn, data):
    """A peer claiming return routability (Nonce Indices, RR-derived Kbm) is not believed."""
    rr_cn = CorrespondentNode(CN, rng=SeededRng(3))
    hot, cot = _rr_tokens(rr_cn, 0)
    kbm = binding_management_key(hot.token, cot.token)
    out = cn.receive(bu_packet(kbm, 1, options=(NonceIndices(hot.nonce_index, cot.nonce_index),)), 0)
    assert not sends(out) and cn.binding_for(HOME) is None


# ---------------------------------------------------------------- rule 4: sequence numbers


@pytest.mark.parametrize(
    "last,new,accepted",
    [(10000, 10001, True), (10000, 42767, True), (10000, 9999, False), (10000, 10000, False),
     (10000, 42768, False), (10000, 0, False), (42768, 0, True), (42768, 9999, True)],
)
def test_rule4_sequence_vectors_against_the_stored_value_R4(data, last, new, accepted):
    store = Disk({record_key(data): SeqRecord(last, 1)})  # one use so far: a step of 32767 stays within R13
    cn = make_cn(data, store)
    (ba,) = bas(cn.receive(bu_packet(pc_kbm(data), new), 0))
    if accepted:
        assert ba.status == BAStatus.ACCEPTED and store.get(key_of(cn)).last == new
    else:
        assert ba.status == BAStatus.SEQUENCE_OUT_OF_WINDOW and ba.seq == last
        assert bad_valid(ba, pc_kbm(data), COA1, CN)  # 135 carries BAD (R7)
        assert store.get(key_of(cn)).last == last and cn.binding_for(HOME) is None


def test_rule4_precomputed_peer_is_checked_even_without_a_binding_R4(cn, data):
    cn.receive(bu_packet(pc_kbm(data), 7), 0)
    cn.bindings.clear()  # the binding is gone (expired, deleted): the stored number still counts
    (ba,) = bas(cn.receive(bu_packet(pc_kbm(data), 7), 0))
    assert ba.status == BAStatus.SEQUENCE_OUT_OF_WINDOW and ba.seq == 7


def test_rule4_rr_peer_is_checked_only_when_a_binding_exists():
    cn = CorrespondentNode(CN, rng=SeededRng(3))
    hot, cot = _rr_tokens(cn, 0)
    kbm = binding_management_key(hot.token, cot.token)
    ni = (NonceIndices(hot.nonce_index, cot.nonce_index),)
    assert bas(cn.receive(bu_packet(kbm, 500, options=ni), 0))[0].status == BAStatus.ACCEPTED
    assert bas(cn.receive(bu_packet(kbm, 400, options=ni), 0))[0].status == BAStatus.SEQUENCE_OUT_OF_WINDOW
    cn.bindings.clear()
    assert bas(cn.receive(bu_packet(kbm, 400, options=ni), 0))[0].status == BAStatus.ACCEPTED


# ---------------------------------------------------------------- rules 5-6: persist, bind, acknowledge


def test_rule5_precomputed_lifetime_is_policy_not_the_rr_cap_R16(data):
    cn = CorrespondentNode(CN, peers=[data])
    (ba,) = bas(cn.receive(bu_packet(pc_kbm(data), 1, lifetime=5000), 0))
    assert ba.lifetime == 5000 and cn.binding_for(HOME).lifetime_units == 5000
    capped = CorrespondentNode(CN, peers=[data], precomputed_max_lifetime_units=300)
    (ba,) = bas(capped.receive(bu_packet(pc_kbm(data), 1, lifetime=5000), 0))
    assert ba.lifetime == 300


def test_rule6_no_ba_without_a_flag_unless_rejected(cn, data):
    out = cn.receive(bu_packet(pc_kbm(data), 5, ack=False), 0)
    assert not bas(out) and cn.binding_for(HOME).seq == 5
    out = cn.receive(bu_packet(pc_kbm(data), 4, ack=False), 0)
    assert [b.status for b in bas(out)] == [BAStatus.SEQUENCE_OUT_OF_WINDOW]


def test_ba_goes_to_the_careof_address_with_a_type2_routing_header(cn, data):
    (p,) = sends(cn.receive(bu_packet(pc_kbm(data), 1), 0))
    assert p.dst == COA1 and p.rh2_address == HOME and p.src == CN


def test_precomputed_deregistration(cn, data):
    cn.receive(bu_packet(pc_kbm(data), 1), 0)
    dereg = pc_kbm(data, dereg=True)
    out = cn.receive(bu_packet(dereg, 2, lifetime=0), 0)
    (ba,) = bas(out)
    assert ba.status == BAStatus.ACCEPTED and bad_valid(ba, dereg, COA1, CN)
    assert cn.binding_for(HOME) is None and events(out, "binding_deleted")
    # From the home link itself (no HAO, CoA = home address): BA straight to the home address.
    cn.receive(bu_packet(pc_kbm(data), 3), 0)
    bu = BindingUpdate(4, 0, ack=True)
    mh = seal_bad(bu, dereg, HOME, CN)
    out = cn.receive(build_packet(HOME, CN, IPPROTO_MH, mh), 0)
    (p,) = sends(out)
    assert p.dst == HOME and p.rh2_address is None and cn.binding_for(HOME) is None


def test_kbm_advance_bound_stops_the_cn_R13(data, store):
    store.put(record_key(data), SeqRecord(100, 32768))
    cn = make_cn(data, store)
    out = cn.receive(bu_packet(pc_kbm(data), 101), 0)
    assert not sends(out) and events(out, "rekey_required") and cn.binding_for(HOME) is None
    store.put(key_of(cn), SeqRecord(100, 32767))
    cn = make_cn(data, store)  # restarted with the record of an advance one short of the bound
    out = cn.receive(bu_packet(pc_kbm(data), 101), 0)
    assert bas(out)[0].status == BAStatus.ACCEPTED  # the last step the key allows
    assert events(out, "rekey_required") and store.get(key_of(cn)) == SeqRecord(101, 32768)
    out = cn.receive(bu_packet(pc_kbm(data), 102), 0)
    assert not sends(out) and events(out, "rekey_required") and cn.binding_for(HOME).seq == 101


def test_binding_expires_on_its_timer(cn, data):
    cn.receive(bu_packet(pc_kbm(data), 1, lifetime=2), 0)
    assert cn.next_timer() == 8 * SECOND_NS
    assert not cn.handle_timer(8 * SECOND_NS - 1)
    out = cn.handle_timer(8 * SECOND_NS)
    assert events(out, "binding_expired") and cn.binding_for(HOME) is None


# ---------------------------------------------------------------- Binding Errors


def test_binding_error_1_for_home_address_option_without_binding(cn):
    pkt = build_packet(COA1, CN, IPPROTO_UDP, b"\x00" * 16, home_address=HOME)
    (p,) = sends(cn.receive(pkt, 0))
    be = decode(p.payload)
    assert type(be) is BindingError and be.status == BEStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS
    assert be.home_address == HOME and p.dst == COA1


def test_binding_error_2_for_unknown_mh_type(cn):
    mh = encode(UnknownMessage(42, b"\x00\x00"))
    (p,) = sends(cn.receive(build_packet(ATTACKER, CN, IPPROTO_MH, mh), 0))
    be = decode(p.payload)
    assert type(be) is BindingError and be.status == BEStatus.UNRECOGNIZED_MH_TYPE


def test_set_peers_refuses_a_shared_kcn_R10(data):
    from testbed.errors import ConfigError

    other = dataclasses.replace(data, home_address=__import__("ipaddress").IPv6Address("2001:db8:1::200"), source="other")
    with pytest.raises(ConfigError):
        CorrespondentNode(CN, peers=[data, other])


def test_events_never_carry_secrets(cn, data):
    out = cn.receive(bu_packet(pc_kbm(data), 1), 0)
    text = repr([a.as_dict() for a in out if isinstance(a, Event)]) + repr(cn._peers[HOME].data)
    for secret in (data.kcn, data.home_nonce, data.careof_nonce, pc_kbm(data)):
        assert secret.hex() not in text and repr(secret) not in text


# ---------------------------------------------------------------- options the CN does not know


def _dstopts_packet(mh, *, option_type, src=COA1, dst=CN, hao=True):
    """A BU packet whose Destination Options header holds ``option_type`` (2 data octets)
    beside the Home Address option; the MH checksum as build_packet computes it."""
    ref = parse_packet(build_packet(src, dst, IPPROTO_MH, mh, home_address=HOME if hao else None))
    body = bytes((option_type, 2, 0, 0))  # the unknown option, then PadN(2), then the HAO at 8n+6
    opts = body + b"\x01\x00" + bytes((201, 16)) + HOME if hao else body + b"\x01\x00"
    ext = bytes((IPPROTO_MH, (2 + len(opts)) // 8 - 1 + (1 if (2 + len(opts)) % 8 else 0))) + opts
    ext += bytes(-len(ext) % 8)
    ext = ext[:1] + bytes((len(ext) // 8 - 1,)) + ext[2:]
    payload = ext + ref.payload
    head = bytes.fromhex("60000000") + len(payload).to_bytes(2, "big") + bytes((60, 64)) + src + dst
    return head + payload


@pytest.mark.parametrize("option_type,pp", [(0x3E, False), (0x7E, False), (0xBE, True), (0xFE, True)])
def test_unrecognised_destination_option_discards_an_authentic_bu(cn, data, option_type, pp):
    """RFC 8200 4.2: action bits 00 skip the option; 01 discard; 10 discard and ICMPv6
    Parameter Problem code 2; 11 the same unless the destination was multicast."""
    mh = seal_bad(BindingUpdate(1, 105, ack=True), pc_kbm(data), COA1, CN)
    pkt = _dstopts_packet(mh, option_type=option_type)
    out = cn.receive(pkt, 0)
    if option_type >> 6 == 0:
        assert [b.status for b in bas(out)] == [BAStatus.ACCEPTED]
        return
    assert not bas(out) and cn.binding_for(HOME) is None and cn.disk.get(key_of(cn)) is None
    assert "unrecognised option" in events(out, "drop")[0]["reason"]
    icmp = [p for p in sends(out) if p.next_header == 58]
    if not pp:
        assert not sends(out)
        return
    (p,) = icmp
    assert (p.src, p.dst, p.payload[0], p.payload[1]) == (CN, COA1, 4, 2)
    pointer = int.from_bytes(p.payload[4:8], "big")
    assert pointer == 42 and pkt[pointer] == option_type  # the option's type octet
    assert p.payload[8:] == pkt  # the invoking packet, whole (it is short)
    from testbed.mip6.packet import internet_checksum
    pseudo = p.src + p.dst + len(p.payload).to_bytes(4, "big") + bytes((0, 0, 0, 58))
    assert internet_checksum(pseudo + p.payload) == 0


def test_unrecognised_option_parameter_problems_are_rate_limited(cn, data):
    mh = seal_bad(BindingUpdate(1, 105, ack=True), pc_kbm(data), COA1, CN)
    pkt = _dstopts_packet(mh, option_type=0xBE)
    sent = sum(len(sends(cn.receive(pkt, 0))) for _ in range(40))
    assert sent == 10  # the burst, at one instant
    assert len(sends(cn.receive(pkt, SECOND_NS // 10))) == 1  # refilled at 10 a second
    out = cn.receive(pkt, SECOND_NS // 10)
    assert not sends(out) and events(out, "error_not_sent")[0]["reason"].startswith("rate limit")


def test_two_different_unknown_mobility_options_are_skipped(cn, data):
    from testbed.mip6.options import UnknownOption

    kbm = pc_kbm(data)
    out = cn.receive(bu_packet(kbm, 1, options=(UnknownOption(0x20, b"ab"), UnknownOption(0x21, b"cd"))), 0)
    assert [b.status for b in bas(out)] == [BAStatus.ACCEPTED]
    out = cn.receive(bu_packet(kbm, 2, options=(UnknownOption(0x20, b"ab"), UnknownOption(0x20, b"cd"))), 0)
    assert not sends(out) and "duplicate option type 32" in events(out, "drop")[0]["reason"]


def test_mh_checksum_covers_the_mobility_header_that_header_len_delimits(cn, data):
    """Octets after the Mobility Header (Payload Proto 59: ignored, RFC 8200 4.7) are not in
    the checksum; a checksum computed over the whole IPv6 payload is wrong."""
    from testbed.mip6.packet import mh_checksum

    mh = seal_bad(BindingUpdate(1, 105, ack=True), pc_kbm(data), COA1, CN)
    good = bytearray(build_packet(COA1, CN, IPPROTO_MH, mh, home_address=HOME) + b"trailing")
    good[4:6] = (int.from_bytes(good[4:6], "big") + 8).to_bytes(2, "big")
    assert [b.status for b in bas(cn.receive(bytes(good), 0))] == [BAStatus.ACCEPTED]
    whole = bytes(mh[:4]) + b"\0\0" + bytes(mh[6:]) + b"trailing"
    wrong = bytearray(good)
    off = len(good) - len(whole)
    wrong[off + 4 : off + 6] = mh_checksum(HOME, CN, whole).to_bytes(2, "big")
    out = cn.receive(bytes(wrong), 0)
    assert not sends(out) and "checksum" in events(out, "drop")[0]["reason"]


# ---------------------------------------------------------------- Binding Errors (RFC 6275 9.3.3)


def test_binding_error_home_address_field_is_unspecified_without_a_home_address_option(cn):
    mh = encode(UnknownMessage(42, b"\x00\x00"))
    (p,) = sends(cn.receive(build_packet(ATTACKER, CN, IPPROTO_MH, mh), 0))
    be = decode(p.payload)
    assert be.home_address == bytes(16) and p.dst == ATTACKER
    (p,) = sends(cn.receive(build_packet(COA1, CN, IPPROTO_MH, mh, home_address=HOME), 0))
    assert decode(p.payload).home_address == HOME and p.dst == COA1


@pytest.mark.parametrize("source", ["ff02::1", "ff05::2", "::"])
def test_binding_error_never_goes_to_a_source_that_is_not_unicast(cn, source):
    import ipaddress

    src = ipaddress.IPv6Address(source).packed
    for pkt in (build_packet(src, CN, IPPROTO_MH, encode(UnknownMessage(42, b"\x00\x00"))),
                build_packet(src, CN, IPPROTO_UDP, b"\x00" * 16, home_address=HOME)):
        out = cn.receive(pkt, 0)
        assert not sends(out) and "not a unicast" in events(out, "error_not_sent")[0]["reason"]


def test_binding_errors_are_rate_limited_like_icmpv6_errors(cn):
    mh = encode(UnknownMessage(42, b"\x00\x00"))
    pkt = build_packet(ATTACKER, CN, IPPROTO_MH, mh)
    sent = [len(sends(cn.receive(pkt, i * 1_000_000))) for i in range(150)]  # 150 in 0.15 s
    assert sum(sent) == 11  # a burst of 10, then 10 a second
    assert sum(len(sends(cn.receive(pkt, 2 * SECOND_NS))) for _ in range(20)) == 10  # full again


def test_rule3_an_authenticator_wrong_only_in_its_last_octet_is_a_silent_drop(cn, data):
    mh = bytearray(seal_bad(BindingUpdate(1, 105, ack=True), pc_kbm(data), COA1, CN))
    mh[-1] ^= 0x01
    out = cn.receive(build_packet(COA1, CN, IPPROTO_MH, bytes(mh), home_address=HOME), 0)
    assert not sends(out) and "mismatch" in events(out, "drop")[0]["reason"]
    assert cn.disk.get(key_of(cn)) is None and cn.binding_for(HOME) is None
