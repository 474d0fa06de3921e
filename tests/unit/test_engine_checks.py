"""Details of the engines' authentication, sequence-number and replay checks that mutation
testing (scripts/mutation, docs/mutation.md) found no test guarding: each test here fails
for a change of the code that all the others let through."""

from __future__ import annotations

import ipaddress

import pytest
from engine_fixtures import (
    ATTACKER, CN_PC, CN_RR, COA1, COA2, HA, HOME, HOME_PREFIX, MN_HA, MN_HA_SA, MS, Disk, SeededRng, durable, make_world,
    preconfigured,
)
from engine_fixtures import fields as events

from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.constants import IPPROTO_MH, IPPROTO_UDP, MN_AAA_AUTH_SUBTYPE, SECOND_NS, BAStatus
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.actions import Send
from testbed.mip6.ha import HomeAgent
from testbed.mip6.messages import BindingAck, BindingRefreshRequest, BindingUpdate, decode, encode
from testbed.mip6.options import AlternateCoA, MobilityMessageAuth, NonceIndices, ReplayProtection
from testbed.mip6.packet import build_packet, parse_packet
from testbed.mip6.sealing import bad_valid, mn_ha_valid, seal_bad, seal_mn_ha
from testbed.mip6.seqno import KBM_MAX_ADVANCE, seq_distance
from testbed.mip6.persistence import SeqRecord


def sends(actions):
    return [parse_packet(a.packet) for a in actions if type(a) is Send]


def one_ba(actions):
    (p,) = [p for p in sends(actions) if p.next_header == IPPROTO_MH]
    return p, decode(p.payload)


def pc_kbm(data, coa=COA1, dereg=False):
    ht = home_keygen_token(data.kcn, HOME, data.home_nonce)
    return binding_management_key(ht, None if dereg else careof_keygen_token(data.kcn, coa, data.careof_nonce))


def cn_bu(kbm, seq, *, lifetime=100, home=False, options=(), seal=True):
    bu = BindingUpdate(seq, lifetime, ack=True, home=home, options=tuple(options))
    mh = seal_bad(bu, kbm, COA1, CN_PC) if seal else encode(bu)
    return build_packet(COA1, CN_PC, IPPROTO_MH, mh, home_address=HOME)


# ---------------------------------------------------------------- correspondent node


def test_seq_distance_half_way_is_behind():
    assert seq_distance(32768, 0) == -32768 and seq_distance(0, 32768) == -32768


def test_cn_sends_no_binding_error_for_an_ordinary_packet():
    cn = CorrespondentNode(CN_PC)
    assert cn.receive(build_packet(ATTACKER, CN_PC, IPPROTO_UDP, bytes(16)), 0) == []


def test_cn_home_registration_refusals_are_authenticated_and_addressed_like_every_ba():
    data = preconfigured()
    cn = CorrespondentNode(CN_PC, peers=[data])
    out = cn.receive(cn_bu(pc_kbm(data), 1, home=True), 0)
    p, ba = one_ba(out)
    assert ba.status == BAStatus.HOME_REGISTRATION_NOT_SUPPORTED and ba.lifetime == 0
    assert bad_valid(ba, pc_kbm(data), COA1, CN_PC) and p.rh2_address == HOME and p.dst == COA1
    assert events(out, "bu_received")
    p, ba = one_ba(cn.receive(cn_bu(pc_kbm(data, dereg=True), 2, home=True, lifetime=0), 0))
    assert ba.status == BAStatus.HOME_REGISTRATION_NOT_SUPPORTED and bad_valid(ba, pc_kbm(data, dereg=True), COA1, CN_PC)
    rr = CorrespondentNode(CN_PC)  # no preconfigured data: an unauthenticated 131
    p, ba = one_ba(rr.receive(cn_bu(bytes(20), 1, home=True), 0))
    assert ba.status == BAStatus.HOME_REGISTRATION_NOT_SUPPORTED and not ba.options


def test_cn_rr_bu_without_bad_is_dropped_for_that_reason():
    cn = CorrespondentNode(CN_PC, rng=SeededRng(1))
    out = cn.receive(cn_bu(None, 1, options=(NonceIndices(1, 2),), seal=False), 0)
    assert not sends(out) and events(out, "drop")[0]["reason"] == "BU without Binding Authorization Data"


def test_cn_refusals_carry_lifetime_0_and_go_to_the_careof_address_with_the_home_address():
    data = preconfigured()
    cn = CorrespondentNode(CN_PC, peers=[data])
    one_ba(cn.receive(cn_bu(pc_kbm(data), 5), 0))
    assert cn.binding_for(HOME).home == HOME
    out = cn.receive(cn_bu(pc_kbm(data), 4), 0)
    p, ba = one_ba(out)
    assert (ba.status, ba.seq, ba.lifetime, p.rh2_address) == (BAStatus.SEQUENCE_OUT_OF_WINDOW, 5, 0, HOME)
    rr = CorrespondentNode(CN_PC, rng=SeededRng(1))
    out = rr.receive(cn_bu(bytes(20), 1, options=(NonceIndices(7, 8),)), 0)
    p, ba = one_ba(out)
    assert (ba.status, ba.lifetime, p.rh2_address) == (BAStatus.EXPIRED_NONCES, 0, HOME) and events(out, "bu_received")


def test_cn_binding_error_1_bucket_refills():
    cn = CorrespondentNode(CN_PC)
    pkt = build_packet(COA1, CN_PC, IPPROTO_UDP, bytes(16), home_address=HOME)
    assert sum(len(sends(cn.receive(pkt, 0))) for _ in range(15)) == 10
    assert sum(len(sends(cn.receive(pkt, SECOND_NS))) for _ in range(15)) == 10


# ---------------------------------------------------------------- home agent


def _ha():
    return HomeAgent(HA, HOME_PREFIX, keys={HOME: MN_HA_SA})


def _home_bu(seq, ts, *, coa=COA1, lifetime=100, options=None, key=MN_HA[1], seal=True):
    opts = (ReplayProtection(ts),) if options is None else options
    bu = BindingUpdate(seq, lifetime, ack=True, home=True, options=opts)
    mh = seal_mn_ha(bu, MN_HA[0], key, coa, HOME) if seal else encode(bu)
    return build_packet(coa, HA, IPPROTO_MH, mh, home_address=HOME)


def test_ha_refusals_are_authenticated_where_rfc_4285_allows_and_carry_lifetime_0():
    ha = _ha()
    p, ba = one_ba(ha.receive(_home_bu(1, 1, key=b"\x33" * 20), 0))
    assert (ba.status, ba.lifetime, p.dst, p.rh2_address) == (146, 0, COA1, HOME) and not ba.options
    p, ba = one_ba(ha.receive(_home_bu(1, 1, options=()), 0))
    assert (ba.status, ba.lifetime) == (145, 0) and mn_ha_valid(ba, MN_HA[1], COA1, HOME)
    one_ba(ha.receive(_home_bu(5, 100), 0))
    p, ba = one_ba(ha.receive(_home_bu(6, 100), 0))
    assert (ba.status, ba.lifetime) == (144, 0) and mn_ha_valid(ba, MN_HA[1], COA1, HOME)
    p, ba = one_ba(ha.receive(_home_bu(4, 200), 0))
    assert (ba.status, ba.seq, ba.lifetime) == (135, 5, 0) and mn_ha_valid(ba, MN_HA[1], COA1, HOME)
    assert [o.timestamp for o in ba.options if type(o) is ReplayProtection] == [200]


def test_ha_132_carries_lifetime_0():
    import ipaddress as ip
    from testbed.mip6.mnha import MnHaSecurityAssociation

    outside = ip.IPv6Address("2001:db8:9::100").packed
    sa = MnHaSecurityAssociation(ip.IPv6Address(outside), ip.IPv6Address(HA), *MN_HA)
    ha = HomeAgent(HA, HOME_PREFIX, keys={outside: sa})
    mh = seal_mn_ha(BindingUpdate(1, 100, ack=True, home=True, options=(ReplayProtection(9),)), MN_HA[0], MN_HA[1], COA1, outside)
    p, ba = one_ba(ha.receive(build_packet(COA1, HA, IPPROTO_MH, mh, home_address=outside), 0))
    assert (ba.status, ba.lifetime) == (132, 0)


def test_ha_needs_the_mn_ha_option_with_the_mn_ha_subtype():
    ha = _ha()
    assert one_ba(ha.receive(_home_bu(1, 1, seal=False), 0))[1].status == BAStatus.MIPV6_AUTH_FAIL
    bu = BindingUpdate(1, 100, ack=True, home=True, options=(ReplayProtection(1),))
    from testbed.mip6.crypto import authenticated_part, mn_ha_authenticator
    import dataclasses

    msg = dataclasses.replace(bu, options=(*bu.options, MobilityMessageAuth(MN_AAA_AUTH_SUBTYPE, MN_HA[0], bytes(12))))
    raw = encode(msg)
    raw = raw[:-12] + mn_ha_authenticator(MN_HA[1], COA1, HOME, authenticated_part(raw))  # right key, MN-AAA subtype
    assert one_ba(ha.receive(build_packet(COA1, HA, IPPROTO_MH, raw, home_address=HOME), 0))[1].status == 146


def test_ha_drops_an_authentic_home_registration_with_an_option_twice():
    ha = _ha()
    out = ha.receive(_home_bu(1, 1, options=(ReplayProtection(1), ReplayProtection(2))), 0)
    assert not sends(out) and "duplicate" in events(out, "drop")[0]["reason"] and not ha.bindings


def test_ha_registers_the_alternate_careof_address():
    ha = _ha()
    bu = BindingUpdate(1, 100, ack=True, home=True, options=(ReplayProtection(1), AlternateCoA(COA2)))
    mh = seal_mn_ha(bu, MN_HA[0], MN_HA[1], COA2, HOME)
    p, ba = one_ba(ha.receive(build_packet(COA1, HA, IPPROTO_MH, mh, home_address=HOME), 0))
    assert ba.status == 0 and ha.binding_for(HOME).careof == COA2


def test_ha_bindings_their_events_and_deregistrations():
    store = Disk()
    ha = _ha()
    out = durable(ha, ha.receive(_home_bu(1, 1, lifetime=1), 0), store)
    b = ha.binding_for(HOME)
    assert events(out, "home_binding_created") and (b.home, b.careof, b.lifetime_units) == (HOME, COA1, 1)
    assert events(durable(ha, ha.receive(_home_bu(2, 2), 0), store), "home_binding_refreshed")
    assert events(durable(ha, ha.receive(_home_bu(3, 3, coa=COA2), 0), store), "home_binding_updated")
    assert store.get(f"ha/{HOME.hex()}") == SeqRecord(3, 3)
    out = durable(ha, ha.receive(_home_bu(10, 4, coa=COA2, lifetime=0), 0), store)
    assert events(out, "home_binding_deleted") and not ha.bindings
    assert store.get(f"ha/{HOME.hex()}") == SeqRecord(10, 10)
    p, ba = one_ba(ha.receive(_home_bu(11, 5, coa=COA2, lifetime=0), 0))  # nothing to delete: still accepted
    assert ba.status == 0 and not ha.bindings


def test_ha_discards_unrecognised_options_and_answers_as_rfc_8200_says():
    ha = _ha()
    good = _home_bu(1, 1)
    for option_type, answers in ((0x7E, 0), (0xBE, 1)):
        pkt = _with_option(good, option_type)
        out = ha.receive(pkt, 0)
        assert len(sends(out)) == answers and not ha.bindings
        assert "unrecognised option" in events(out, "drop")[0]["reason"]
        for p in sends(out):
            assert p.payload[0] == 4 and pkt[int.from_bytes(p.payload[4:8], "big")] == option_type


def test_ha_says_why_a_packet_for_a_home_address_is_dropped():
    ha = _ha()
    out = ha.receive(build_packet(CN_RR, HOME, IPPROTO_UDP, b"x"), 0)
    assert events(out, "drop")[0]["reason"] == "no binding for home address"
    out = ha.receive(build_packet(CN_RR, ATTACKER, IPPROTO_UDP, b"x"), 0)
    assert events(out, "drop")[0]["reason"] == "not for the home agent"


def _with_option(packet: bytes, option_type: int) -> bytes:
    """A packet with a Home Address option, an unrecognised option added ahead of it."""
    hdr_len = (packet[41] + 1) * 8
    ext = bytearray(packet[40 : 40 + hdr_len])
    ext[1] += 1
    ext[2:2] = bytes((option_type, 2, 0, 0, 1, 2, 0, 0))
    body = bytes(ext) + packet[40 + hdr_len :]
    return packet[:4] + len(body).to_bytes(2, "big") + packet[6:40] + body


# ---------------------------------------------------------------- mobile node: home registration


def _mn_with_home_bu_outstanding():
    w = make_world()
    w.net.filters.append(lambda src, dst, pkt: dst != "ha")
    w.move(COA1)
    w.net.run_for(1 * MS)
    return w, w.mn.home


def _home_ba(e, *, status=0, seq=None, ts=None, options=None, lifetime=100):
    opts = (ReplayProtection(e.timestamp if ts is None else ts),) if options is None else options
    msg = BindingAck(status, e.seq if seq is None else seq, lifetime, options=opts)
    return build_packet(HA, COA1, IPPROTO_MH, seal_mn_ha(msg, MN_HA[0], MN_HA[1], COA1, HOME), rh2_address=HOME)


def test_mn_home_ba_replay_checks():
    w, e = _mn_with_home_bu_outstanding()
    for ba, reason in ((_home_ba(e, options=()), "does not echo our timestamp"),
                       (_home_ba(e, ts=e.timestamp - 1), "does not echo our timestamp"),
                       (_home_ba(e, options=(ReplayProtection(e.timestamp), ReplayProtection(e.timestamp))), "duplicate")):
        out = w.mn.receive(ba, w.net.now)
        assert reason in events(out, "drop")[0]["reason"] and e.state == "bu_sent"
    good = _home_ba(e)
    assert events(w.mn.receive(good, w.net.now), "home_registered") and e.bound_careof == COA1
    out = w.mn.receive(good, w.net.now)  # the same BA again: no BU outstanding
    assert "no BU outstanding" in events(out, "drop")[0]["reason"]


def test_mn_resynchronises_its_home_registration_after_an_authenticated_135():
    w, e = _mn_with_home_bu_outstanding()
    out = w.mn.receive(_home_ba(e, status=BAStatus.SEQUENCE_OUT_OF_WINDOW, seq=700, lifetime=0), w.net.now)
    (p,) = sends(out)
    assert decode(p.payload).seq == 701 and e.seq == 701 and e.state == "bu_sent"


@pytest.mark.parametrize("status", [128, 129])
def test_mn_takes_any_status_from_128_as_a_refusal(status):
    w, e = _mn_with_home_bu_outstanding()
    out = w.mn.receive(_home_ba(e, status=status, lifetime=0), w.net.now)
    assert events(out, "binding_refused") and e.state == "failed" and e.bu_retx is None
    w.net.run_for(10 * SECOND_NS)  # the other entries' timers run on
    data = preconfigured()
    w = make_world(data=data)
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_pc")
    w.move(COA1)
    w.net.run_for(1 * MS)
    c = w.mn.bul[CN_PC]
    ba = seal_bad(BindingAck(status, c.seq, 0), pc_kbm(data), COA1, CN_PC)
    out = w.mn.receive(build_packet(CN_PC, COA1, IPPROTO_MH, ba, rh2_address=HOME), w.net.now)
    assert events(out, "binding_refused") and c.state == "failed"


def test_mn_ba_135_exactly_half_the_space_ahead_uses_the_key_up():
    data = preconfigured()
    w = make_world(data=data)
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_pc")
    w.move(COA1)
    w.net.run_for(1 * MS)
    c = w.mn.bul[CN_PC]
    ba = seal_bad(BindingAck(BAStatus.SEQUENCE_OUT_OF_WINDOW, (c.seq + 32768) & 0xFFFF, 0), pc_kbm(data), COA1, CN_PC)
    out = w.mn.receive(build_packet(CN_PC, COA1, IPPROTO_MH, ba, rh2_address=HOME), w.net.now)
    (rekey,) = events(out, "rekey_required")
    assert rekey["advance"] == KBM_MAX_ADVANCE and c.advance == KBM_MAX_ADVANCE and c.state == "rekey"


# ---------------------------------------------------------------- mobile node: correspondents


def _rr_bound_world():
    w = make_world()
    w.move(COA1)
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    return w, w.mn.bul[CN_RR]


def test_mn_ignores_an_unauthenticated_ba_from_an_rr_peer_but_heeds_an_expired_nonce_one():
    w, e = _rr_bound_world()
    assert e.bound_careof == COA1
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_rr")
    w.net.call("mn", lambda now: w.mn._send_cn_bu(e, now))  # a refresh BU, held on the way
    out = w.mn.receive(build_packet(CN_RR, COA1, IPPROTO_MH, encode(BindingAck(0, e.seq, 100)), rh2_address=HOME), w.net.now)
    assert events(out, "drop")[0]["reason"] == "unauthenticated BA" and e.state == "bu_sent"
    out = w.mn.receive(build_packet(CN_RR, COA1, IPPROTO_MH, encode(BindingAck(BAStatus.EXPIRED_NONCES, e.seq, 0)),
                                    rh2_address=HOME), w.net.now)
    assert e.state == "rr" and e.home_token is None and e.careof_token is None
    kinds = {decode(p.payload if p.next_header == IPPROTO_MH else parse_packet(p.payload).payload).__class__.__name__
             for p in sends(out)}
    assert kinds == {"HomeTestInit", "CareofTestInit"}
    w.net.filters.clear()
    assert w.net.run_until(lambda: e.state == "bound", 10 * SECOND_NS)


def test_mn_binding_refresh_requests_only_from_a_bound_peer():
    w, e = _rr_bound_world()
    brr = encode(BindingRefreshRequest())
    out = w.mn.receive(build_packet(ATTACKER, COA1, IPPROTO_MH, brr, rh2_address=HOME), w.net.now)
    assert "no binding" in events(out, "drop")[0]["reason"]
    out = w.mn.receive(build_packet(CN_RR, COA1, IPPROTO_MH, brr, rh2_address=HOME), w.net.now)
    assert events(out, "brr_received") and e.state == "rr" and events(out, "coti_sent")
    out = w.mn.receive(build_packet(CN_RR, COA1, IPPROTO_MH, brr, rh2_address=HOME), w.net.now)
    assert "no binding" in events(out, "drop")[0]["reason"]  # not bound while its RR round runs


def test_mn_store_failure_is_an_event_and_retried_a_second_later():
    broken = [True]
    w = make_world()
    w.net.persist_failure = lambda node, p: "seq: cannot write: No space left on device" if node == "mn" and broken[0] else None
    w.move(COA1)
    w.net.run_for(1500 * MS)
    failed = w.events_named("store_failed", "mn")
    assert {e["peer"] for e in failed} >= {"2001:db8:1::1", "2001:db8:4::1"}
    first = [e["t_ns"] for e in failed if e["peer"] == "2001:db8:4::1"]
    assert first[1] - first[0] == SECOND_NS and not w.events_named("bu_sent", "mn")
    broken[0] = False
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)


def test_mn_rekey_installs_a_fresh_key_and_a_removed_key_falls_back_to_rr():
    data = preconfigured()
    w = make_world(disks={"mn": {f"mn/cn/{CN_PC.hex()}/{data.key_id}": SeqRecord(100, KBM_MAX_ADVANCE)}}, data=data)
    w.move(COA1)
    assert w.net.run_until(lambda: w.mn.bul[CN_PC].state == "rekey", 5 * SECOND_NS)
    fresh = preconfigured(seed=11)
    w.mn.set_peers([fresh])
    e = w.mn.bul[CN_PC]
    assert e.mechanism == "precomputed" and e.data.key_id == fresh.key_id and e.advance == 0 and e.state == "idle"
    w.mn.set_peers([fresh])
    assert w.mn.bul[CN_PC] is e  # the same key again: the entry stays
    w.mn.set_peers([])
    assert w.mn.bul[CN_PC].mechanism == "rr" and w.mn.bul[CN_RR].mechanism == "rr"


def test_mn_deregisters_with_lifetime_0_and_asks_for_acknowledgements():
    w = make_world()
    w.move(COA1)
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    t = w.net.now
    w.move(HOME)
    w.net.run_for(100 * MS)
    sent = [decode(parse_packet(p).payload) for (tt, s, d, p) in w.net.wire if s == "mn" and tt >= t and d in ("ha", "cn_pc")]
    bus = [m for m in sent if type(m) is BindingUpdate]
    assert len(bus) == 2 and all(m.lifetime == 0 and m.ack for m in bus)


def test_mn_unrecognised_option_parameter_problems_refill():
    w = make_world()
    w.move(COA1)
    w.net.run_for(1 * MS)
    e = w.mn.home
    pkt = _with_option_after_rh2(_home_ba(e), 0xBE)
    assert sum(len(sends(w.mn.receive(pkt, 0))) for _ in range(15)) == 10
    assert len(sends(w.mn.receive(pkt, SECOND_NS // 10))) == 1


def _with_option_after_rh2(packet: bytes, option_type: int) -> bytes:
    """A packet with a type 2 routing header, a Destination Options header with an
    unrecognised option added after it."""
    assert packet[6] == 43
    rh_end = 40 + (packet[41] + 1) * 8
    dst = bytes((packet[40], 0, option_type, 2, 0, 0, 1, 0))
    rh = bytes((60,)) + packet[41:rh_end]
    body = rh + dst + packet[rh_end:]
    return packet[:4] + len(body).to_bytes(2, "big") + packet[6:40] + body


def test_mn_takes_a_hot_or_cot_only_with_the_cookie_of_its_own_init():
    """RFC 6275 5.2.3/5.2.4: a HoT or CoT is matched to the HoTI or CoTI by its cookie."""
    from testbed.mip6.messages import CareofTest, HomeTest

    w = make_world()
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_rr")  # the tests stay outstanding
    w.move(COA1)
    assert w.net.run_until(lambda: w.mn.home.state == "bound" and w.mn.bul[CN_RR].hoti_cookie is not None,
                           5 * SECOND_NS)
    e = w.mn.bul[CN_RR]
    for msg in (HomeTest(1, b"\x01" * 8, b"t" * 8), CareofTest(1, b"\x01" * 8, b"t" * 8)):
        for src in (CN_RR, ATTACKER):
            out = w.mn.receive(build_packet(src, COA1, IPPROTO_MH, encode(msg), rh2_address=HOME), w.net.now)
            assert "matches no" in events(out, "drop")[0]["reason"]
    assert e.home_token is None and e.careof_token is None
    out = w.mn.receive(build_packet(CN_RR, COA1, IPPROTO_MH, encode(HomeTest(1, e.hoti_cookie, b"t" * 8)),
                                    rh2_address=HOME), w.net.now)
    assert events(out, "hot_received") and e.home_token is not None


def test_mn_home_token_is_valid_for_less_than_max_token_lifetime():
    from testbed.mip6.constants import MAX_TOKEN_LIFETIME_S

    w = make_world()
    e = w.mn.bul[CN_RR]
    e.home_token = (b"t" * 8, 1, 1000)
    assert w.mn._home_token_valid(e, 1000 + MAX_TOKEN_LIFETIME_S * SECOND_NS - 1)
    assert not w.mn._home_token_valid(e, 1000 + MAX_TOKEN_LIFETIME_S * SECOND_NS)


def test_mn_set_peers_adds_a_new_correspondent_and_a_peer_need_not_be_listed_twice():
    from testbed.mip6.mn import MobileNode

    data = preconfigured()
    mn = MobileNode(HOME, HA, mn_ha=MN_HA_SA, correspondents=[], peers=[data])
    assert mn.bul[CN_PC].mechanism == "precomputed"  # configured with preconfigured data only
    other = preconfigured(cn=ipaddress.IPv6Address("2001:db8:5::1").packed, seed=12)
    mn.set_peers([data, other])
    assert mn.bul[other.correspondent.packed].mechanism == "precomputed" and mn.bul[CN_PC].data is data


def test_a_move_still_reaches_the_peers_after_one_that_is_out_of_use():
    w = make_world()
    w.move(COA1)
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    w.mn.bul[CN_RR].state = "unsupported"  # first in the Binding Update List
    w.move(COA2)
    assert w.net.run_until(lambda: w.cn_pc.binding_for(HOME).careof == COA2, 10 * SECOND_NS)


def test_ha_set_keys_replaces_the_mn_ha_keys():
    import ipaddress as ip

    from testbed.mip6.mnha import MnHaSecurityAssociation

    ha = _ha()
    assert one_ba(ha.receive(_home_bu(1, 1), 0))[1].status == 0
    new_key = bytes.fromhex("9b7e31c04d2a58f6e1b09c3d7a42e8f5d60c1b93")
    ha.set_keys({HOME: MnHaSecurityAssociation(ip.IPv6Address(HOME), ip.IPv6Address(HA), MN_HA[0], new_key)})
    assert one_ba(ha.receive(_home_bu(2, 2), 0))[1].status == BAStatus.MIPV6_AUTH_FAIL
    assert one_ba(ha.receive(_home_bu(3, 3, key=new_key), 0))[1].status == 0


def test_ha_parameter_problem_bucket_refills():
    ha = _ha()
    pkt = _with_option(_home_bu(1, 1), 0xBE)
    assert sum(len(sends(ha.receive(pkt, 0))) for _ in range(15)) == 10
    assert len(sends(ha.receive(pkt, SECOND_NS // 10))) == 1


def test_mn_after_ba_137_fetches_only_a_new_careof_token():
    """Care-of nonce index expired (137): the home token stays, a new CoTI goes, then a BU."""
    w, e = _rr_bound_world()
    home_token = e.home_token
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_rr")
    w.net.call("mn", lambda now: w.mn._send_cn_bu(e, now))
    ba = build_packet(CN_RR, COA1, IPPROTO_MH, encode(BindingAck(BAStatus.EXPIRED_CAREOF_NONCE_INDEX, e.seq, 0)),
                      rh2_address=HOME)
    out = w.mn.receive(ba, w.net.now)
    assert e.state == "rr" and e.home_token == home_token and e.careof_token is None
    assert events(out, "coti_sent") and not events(out, "hoti_sent")
    w.net.filters.clear()
    assert w.net.run_until(lambda: e.state == "bound", 10 * SECOND_NS)


def test_mn_after_ba_136_fetches_only_a_new_home_token():
    """Home nonce index expired (136): the care-of token stays, a new HoTI goes, then a BU."""
    w, e = _rr_bound_world()
    careof_token = e.careof_token
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_rr")
    w.net.call("mn", lambda now: w.mn._send_cn_bu(e, now))
    ba = build_packet(CN_RR, COA1, IPPROTO_MH, encode(BindingAck(BAStatus.EXPIRED_HOME_NONCE_INDEX, e.seq, 0)),
                      rh2_address=HOME)
    out = w.mn.receive(ba, w.net.now)
    assert e.state == "rr" and e.careof_token == careof_token and e.home_token is None
    assert events(out, "ba_received") and events(out, "hoti_sent") and not events(out, "coti_sent")
    w.net.filters.clear()
    assert w.net.run_until(lambda: e.state == "bound", 10 * SECOND_NS)
