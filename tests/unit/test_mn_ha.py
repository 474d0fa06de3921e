"""Mobile node and home agent behaviour beyond the happy path."""

from __future__ import annotations

from engine_fixtures import (
    ATTACKER,
    CN_PC,
    CN_RR,
    COA1,
    COA2,
    HA,
    HOME,
    HOME_PREFIX,
    MN_HA,
    MN_HA_SA,
    MS,
    fields,
    make_world,
    preconfigured,
)

from testbed.mip6.constants import (
    IPPROTO_IPV6,
    IPPROTO_MH,
    IPPROTO_UDP,
    SECOND_NS,
    BAStatus,
    BEStatus,
    MHType,
)
from testbed.mip6.actions import Persist, Send
from testbed.mip6.events import Drop, Event, HotiForwarded
from testbed.mip6.ha import HomeAgent
from testbed.mip6.messages import (
    BindingAck,
    BindingError,
    BindingRefreshRequest,
    BindingUpdate,
    HomeTestInit,
    decode,
    encode,
)
from testbed.mip6.options import ReplayProtection
from testbed.mip6.packet import build_packet, parse_packet
from testbed.mip6.sealing import mn_ha_valid, seal_mn_ha
from testbed.mip6.persistence import SeqRecord


def _cn_pc_bus(w, since=0):
    return [decode(parse_packet(p).payload) for (t, s, d, p) in w.net.wire if s == "mn" and d == "cn_pc" and t >= since]


def test_unacknowledged_bu_is_retransmitted_with_backoff_and_new_sequence_numbers():
    w = make_world()
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_pc")  # every BU to the CN is lost
    w.move(COA1)
    w.net.run_for(16 * SECOND_NS)
    sent = [e for e in w.events_named("bu_sent", "mn") if e["peer"] == "2001:db8:4::1"]
    times = [e["t_ns"] for e in sent]
    assert [round((b - a) / SECOND_NS) for a, b in zip(times, times[1:])] == [1, 2, 4, 8]
    seqs = [e["seq"] for e in sent]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    w.net.filters.clear()
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 40 * SECOND_NS)
    assert w.cn_pc.binding_for(HOME).seq == seqs[-1] + 1


def test_retransmission_interval_stops_doubling_at_32_s():
    w = make_world()
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_pc")
    w.move(COA1)
    w.net.run_for(200 * SECOND_NS)
    times = [e["t_ns"] for e in w.events_named("bu_sent", "mn") if e["peer"] == "2001:db8:4::1"]
    gaps = [round((b - a) / SECOND_NS) for a, b in zip(times, times[1:])]
    assert gaps[:7] == [1, 2, 4, 8, 16, 32, 32]


def test_precomputed_peer_ignores_binding_errors_and_unauthenticated_bas_R15():
    """An attacker claims the CN does not support the mechanism, or sends a BA asking for
    return routability: the MN stays with the precomputed Kbm and keeps retrying."""
    w = make_world()
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_pc")
    w.move(COA1)
    w.net.run_for(1 * MS)
    be = build_packet(CN_PC, COA1, IPPROTO_MH, encode(BindingError(BEStatus.UNRECOGNIZED_MH_TYPE, HOME)))
    ba = build_packet(CN_PC, COA1, IPPROTO_MH, encode(BindingAck(BAStatus.EXPIRED_NONCES, 1, 0)), rh2_address=HOME)
    w.net.apply("mn", w.mn.receive(be, w.net.now))
    w.net.apply("mn", w.mn.receive(ba, w.net.now))
    assert w.events_named("be_ignored", "mn")
    assert any("R15" in e["reason"] for e in w.events_named("drop", "mn"))
    w.net.filters.clear()
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    to_pc = [(s, d, t) for (s, d, t) in w.wire_types() if "cn_pc" in (s, d)]
    assert all(t in (MHType.BU, MHType.BA) for (_, _, t) in to_pc)
    assert w.mn.bul[CN_PC].mechanism == "precomputed"


def test_rr_peer_that_does_not_know_mobility_is_left_alone():
    w = make_world()
    w.move(COA1)
    w.net.run_for(1 * MS)
    be = build_packet(CN_RR, COA1, IPPROTO_MH, encode(BindingError(BEStatus.UNRECOGNIZED_MH_TYPE, HOME)))
    w.net.apply("mn", w.mn.receive(be, w.net.now))
    assert w.mn.bul[CN_RR].state == "unsupported"


def test_mn_stops_at_the_kbm_use_limit_R13():
    data = preconfigured()
    w = make_world(disks={"mn": {f"mn/cn/{CN_PC.hex()}/{data.key_id}": SeqRecord(40, 65536)}}, data=data)
    w.move(COA1)
    w.net.run_for(3 * SECOND_NS)
    assert w.events_named("rekey_required", "mn")
    assert not [e for e in w.events_named("bu_sent", "mn") if e["peer"] == "2001:db8:4::1"]
    assert w.mn.bul[CN_PC].state == "rekey"
    assert w.cn_rr.binding_for(HOME) is not None  # the other peers go on


def test_lost_hot_makes_the_mn_retransmit_hoti():
    w = make_world()
    dropped = []

    def lose_first_hot(src, dst, pkt):
        p = parse_packet(pkt)
        inner = parse_packet(p.payload) if p.next_header == IPPROTO_IPV6 else p
        if inner.next_header == IPPROTO_MH and inner.payload[2] == MHType.HOT and not dropped:
            dropped.append(pkt)
            return False
        return True

    w.net.filters.append(lose_first_hot)
    w.move(COA1)
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    assert dropped
    assert [e for e in w.events_named("retransmit", "mn") if e["what"] == "HoTI"]


def test_binding_refresh_request_triggers_a_new_bu():
    w = make_world()
    w.move(COA1)
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    before = w.cn_pc.binding_for(HOME).seq
    brr = build_packet(CN_PC, COA1, IPPROTO_MH, encode(BindingRefreshRequest()), rh2_address=HOME)
    w.net.inject("cn_pc", brr)
    assert w.net.run_until(lambda: w.cn_pc.binding_for(HOME).seq > before, 1 * SECOND_NS)


def test_malformed_input_never_raises_in_any_engine():
    import random

    w = make_world()
    w.move(COA1)
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    samples = [p for (_, _, _, p) in w.net.wire]
    r = random.Random(4)
    for engine in (w.mn, w.ha, w.cn_rr, w.cn_pc):
        for _ in range(400):
            pkt = bytearray(r.choice(samples))
            for _ in range(r.randint(1, 4)):
                pkt[r.randrange(len(pkt))] = r.randrange(256)
            if r.random() < 0.3:
                pkt = pkt[: r.randrange(len(pkt))]
            for a in engine.receive(bytes(pkt), w.net.now):
                assert type(a) in (Send, Persist) or isinstance(a, Event)


# ---------------------------------------------------------------- home agent


def _ha():
    return HomeAgent(HA, HOME_PREFIX, keys={HOME: MN_HA_SA})


def _home_bu(seq, ts, *, key=MN_HA[1], spi=MN_HA[0], coa=COA1, lifetime=100, replay=True):
    opts = (ReplayProtection(ts),) if replay else ()
    mh = seal_mn_ha(BindingUpdate(seq, lifetime, ack=True, home=True, options=opts), spi, key, coa, HOME)
    return build_packet(coa, HA, IPPROTO_MH, mh, home_address=HOME)


def _ba(actions):
    (p,) = [parse_packet(a.packet) for a in actions if type(a) is Send]
    return p, decode(p.payload)


def test_ha_accepts_an_authenticated_home_registration():
    ha = _ha()
    p, ba = _ba(ha.receive(_home_bu(1, 1000), 0))
    assert ba.status == BAStatus.ACCEPTED and ba.lifetime == 100
    assert mn_ha_valid(ba, MN_HA[1], COA1, HOME)
    assert [o.timestamp for o in ba.options if type(o) is ReplayProtection] == [1000]
    assert p.dst == COA1 and p.rh2_address == HOME
    assert ha.binding_for(HOME).careof == COA1


def test_ha_rfc4285_failures():
    ha = _ha()
    assert _ba(ha.receive(_home_bu(1, 1000, key=b"k" * 20), 0))[1].status == BAStatus.MIPV6_AUTH_FAIL
    assert _ba(ha.receive(_home_bu(1, 1000, spi=7), 0))[1].status == BAStatus.MIPV6_AUTH_FAIL
    assert _ba(ha.receive(_home_bu(1, 0, replay=False), 0))[1].status == BAStatus.MIPV6_MESG_ID_REQD
    assert _ba(ha.receive(_home_bu(1, 1000), 0))[1].status == BAStatus.ACCEPTED
    _, ba = _ba(ha.receive(_home_bu(2, 1000), 0))  # replayed timestamp
    assert ba.status == BAStatus.MIPV6_ID_MISMATCH and ba.options[0].timestamp == 1000
    _, ba = _ba(ha.receive(_home_bu(1, 2000), 0))  # fresh timestamp, old sequence number
    assert ba.status == BAStatus.SEQUENCE_OUT_OF_WINDOW and ba.seq == 1
    assert ha.binding_for(HOME).seq == 1


def test_mn_resynchronises_its_timestamp_after_ba_144():
    w = make_world()
    w.ha._timestamps[HOME] = 10**15  # the HA saw a far newer timestamp (the MN rebooted, say)
    w.move(COA1)
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    statuses = [e["status"] for e in w.events_named("ba_received", "mn") if e["mechanism"] == "home"]
    assert statuses == [BAStatus.MIPV6_ID_MISMATCH, BAStatus.ACCEPTED]


def test_ha_tunnels_packets_for_the_home_address_to_the_careof_address():
    ha = _ha()
    data = build_packet(CN_RR, HOME, IPPROTO_UDP, b"probe")
    out = ha.receive(data, 0)
    assert not [a for a in out if type(a) is Send]  # no binding yet: dropped with a reason
    ha.receive(_home_bu(1, 1), 0)
    (send,) = [a for a in ha.receive(data, 0) if type(a) is Send]
    outer = parse_packet(send.packet)
    assert outer.src == HA and outer.dst == COA1 and outer.next_header == IPPROTO_IPV6
    assert outer.payload == data


def test_ha_forwards_reverse_tunnelled_hoti_only_from_the_registered_careof():
    ha = _ha()
    ha.receive(_home_bu(1, 1), 0)
    hoti = build_packet(HOME, CN_RR, IPPROTO_MH, encode(HomeTestInit(b"c" * 8)))
    out = ha.receive(build_packet(COA1, HA, IPPROTO_IPV6, hoti), 0)
    assert [a.packet for a in out if type(a) is Send] == [hoti]
    assert [a for a in out if type(a) is HotiForwarded]
    for wrong in (COA2, ATTACKER):
        out = ha.receive(build_packet(wrong, HA, IPPROTO_IPV6, hoti), 0)
        assert not [a for a in out if type(a) is Send]
        assert "outer source" in [a for a in out if type(a) is Drop][0].reason


def test_mn_accepts_tunnelled_packets_only_from_its_home_agent():
    w = make_world()
    w.move(COA1)
    inner = build_packet(CN_RR, HOME, IPPROTO_UDP, b"x")
    out = w.mn.receive(build_packet(ATTACKER, COA1, IPPROTO_IPV6, inner), 0)
    assert "not from the home agent" in out[0].reason


# ---------------------------------------------------------------- issue 9: HA order, MN checks, rate limits

OUTSIDE = bytes.fromhex("20010db8000900000000000000000100")  # 2001:db8:9::100, not in the home prefix


def _events(actions, name):
    return fields(actions, name)


def _outside_ha():
    from testbed.mip6.mnha import MnHaSecurityAssociation
    import ipaddress

    sa = MnHaSecurityAssociation(ipaddress.IPv6Address(OUTSIDE), ipaddress.IPv6Address(HA), *MN_HA)
    return HomeAgent(HA, HOME_PREFIX, keys={OUTSIDE: sa})


def _outside_bu(seq, ts, key=MN_HA[1]):
    mh = seal_mn_ha(BindingUpdate(seq, 100, ack=True, home=True, options=(ReplayProtection(ts),)), MN_HA[0], key, COA1, OUTSIDE)
    return build_packet(COA1, HA, IPPROTO_MH, mh, home_address=OUTSIDE)


def test_ha_answers_132_authenticated_and_only_after_authentication():
    """A home address outside the home prefix: an authentic BU gets BA 132 with the MN-HA
    authenticator and the echoed timestamp (an RFC 4285 MN drops anything less); a BU with a
    wrong authenticator gets the documented 146, unauthenticated, never 132."""
    ha = _outside_ha()
    out = ha.receive(_outside_bu(1, 5000, key=b"\x42" * 20), 0)
    p, ba = _ba(out)
    assert ba.status == BAStatus.MIPV6_AUTH_FAIL and not ba.options
    assert _events(out, "bu_rejected")[0]["reason"] == "MN-HA authentication failed"
    out = ha.receive(_outside_bu(2, 6000), 0)
    p, ba = _ba(out)
    assert ba.status == BAStatus.NOT_HOME_SUBNET and mn_ha_valid(ba, MN_HA[1], COA1, OUTSIDE)
    assert [o.timestamp for o in ba.options if type(o) is ReplayProtection] == [6000]
    assert "outside the home prefix" in _events(out, "bu_rejected")[0]["reason"]
    assert not ha.bindings
    # its timestamp is spent: the same BU again is a replay (144), not another 132
    assert _ba(ha.receive(_outside_bu(2, 6000), 0))[1].status == BAStatus.MIPV6_ID_MISMATCH


def test_ha_without_a_key_for_the_address_answers_146_not_132():
    out = _ha().receive(_outside_bu(1, 5000), 0)
    assert _ba(out)[1].status == BAStatus.MIPV6_AUTH_FAIL
    assert _events(out, "bu_rejected")[0]["reason"] == "no MN-HA key for this home address"


def test_ha_refuses_an_authenticator_wrong_in_its_last_octet_only():
    ha = _ha()
    pkt = bytearray(_home_bu(1, 1000))
    pkt[-1] ^= 0x01  # the 12th authenticator octet (the MH ends the packet); fix the checksum
    from testbed.mip6.packet import with_mh_checksum

    p = parse_packet(bytes(pkt))
    fixed = build_packet(COA1, HA, IPPROTO_MH, with_mh_checksum(HOME, HA, p.payload), home_address=HOME)
    assert _ba(ha.receive(fixed, 0))[1].status == BAStatus.MIPV6_AUTH_FAIL


def _world_with_home_ba(ba_bytes_for):
    """A world whose MN has a home BU outstanding, and the BA the test makes for it."""
    w = make_world()
    w.net.filters.append(lambda src, dst, pkt: dst != "ha")
    w.move(COA1)
    w.net.run_for(1 * MS)
    e = w.mn.home
    return w, e, ba_bytes_for(e)


def test_mn_drops_a_home_ba_whose_mn_ha_authenticator_is_wrong():
    def forged(e, key=MN_HA[1], flip=False):
        msg = BindingAck(0, e.seq, 100, options=(ReplayProtection(e.timestamp),))
        mh = bytearray(seal_mn_ha(msg, MN_HA[0], key, COA1, HOME))
        if flip:
            mh[-1] ^= 0x80  # only the last authenticator octet differs
        return build_packet(HA, COA1, IPPROTO_MH, bytes(mh), rh2_address=HOME)

    for variant in ({"key": b"\x17" * 20}, {"flip": True}):
        w, e, _ = _world_with_home_ba(lambda e: None)
        out = w.mn.receive(forged(e, **variant), w.net.now)
        assert "failed MN-HA authentication" in _events(out, "drop")[0]["reason"]
        assert e.state == "bu_sent" and not _events(out, "home_registered")
    w, e, _ = _world_with_home_ba(lambda e: None)
    out = w.mn.receive(forged(e), w.net.now)
    assert _events(out, "home_registered") and e.state == "bound"


def test_mn_takes_an_authenticated_132_as_a_refusal():
    w, e, _ = _world_with_home_ba(lambda e: None)
    msg = BindingAck(BAStatus.NOT_HOME_SUBNET, e.seq, 0, options=(ReplayProtection(e.timestamp),))
    pkt = build_packet(HA, COA1, IPPROTO_MH, seal_mn_ha(msg, MN_HA[0], MN_HA[1], COA1, HOME), rh2_address=HOME)
    out = w.mn.receive(pkt, w.net.now)
    assert _events(out, "binding_refused")[0]["status"] == BAStatus.NOT_HOME_SUBNET and e.state == "failed"
    bare = build_packet(HA, COA1, IPPROTO_MH, encode(BindingAck(BAStatus.NOT_HOME_SUBNET, e.seq, 0)), rh2_address=HOME)
    w, e, _ = _world_with_home_ba(lambda e: None)
    out = w.mn.receive(bare, w.net.now)  # the old HA's bare 132: an RFC 4285 MN drops it
    assert _events(out, "drop") and e.state == "bu_sent"


def test_mn_drops_a_correspondent_ba_wrong_in_the_last_authenticator_octet_or_padded_after_bad():
    from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
    from testbed.mip6.sealing import seal_bad

    data = preconfigured()
    w = make_world(data=data)
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_pc")
    w.move(COA1)
    w.net.run_for(1 * MS)
    e = w.mn.bul[CN_PC]
    kbm = binding_management_key(home_keygen_token(data.kcn, HOME, data.home_nonce),
                                 careof_keygen_token(data.kcn, COA1, data.careof_nonce))
    good = seal_bad(BindingAck(0, e.seq, 100), kbm, COA1, CN_PC)
    flipped = bytearray(good)
    flipped[-1] ^= 0x01
    padded = good[:1] + bytes((good[1] + 1,)) + good[2:] + b"\x01\x06" + bytes(6)  # PadN after BAD
    for mh in (bytes(flipped), padded):
        out = w.mn.receive(build_packet(CN_PC, COA1, IPPROTO_MH, mh, rh2_address=HOME), w.net.now)
        assert _events(out, "drop") and e.state == "bu_sent"
    out = w.mn.receive(build_packet(CN_PC, COA1, IPPROTO_MH, good, rh2_address=HOME), w.net.now)
    assert _events(out, "cn_registered") and e.state == "bound"


def test_first_home_registration_is_retransmitted_after_1_5_s_later_ones_after_1_s():
    """RFC 6275 11.8: InitialBindackTimeoutFirstReg (1.5 s) while the home agent holds no
    binding for the MN; INITIAL_BINDACK_TIMEOUT (1 s) once it does."""
    w = make_world()
    lost = []
    w.net.filters.append(lambda src, dst, pkt: dst != "ha" or len(lost) >= 1 or lost.append(pkt))
    w.move(COA1)
    assert w.net.run_until(lambda: w.mn.home.state == "bound", 10 * SECOND_NS)
    sent = [e["t_ns"] for e in w.events_named("bu_sent", "mn") if e["mechanism"] == "home"]
    assert sent[1] - sent[0] == 1500 * MS
    w.net.run_for(60 * SECOND_NS)  # the home agent holds a binding for the MN (420 s)
    lost.clear()
    t = w.net.now
    w.move(COA2)
    assert w.net.run_until(lambda: w.mn.home.state == "bound" and w.mn.home.bound_careof == COA2, 10 * SECOND_NS)
    sent = [e["t_ns"] for e in w.events_named("bu_sent", "mn") if e["mechanism"] == "home" and e["t_ns"] >= t]
    assert sent[1] - sent[0] == 1000 * MS


def test_binding_refresh_requests_get_at_most_three_bus_a_second():
    """RFC 6275 11.8 (MAX_UPDATE_RATE): six BRRs in 0.1 s, each answered at once by the CN,
    gave six BUs within a second; now three, and the rest waits for the limit."""
    w = make_world()
    w.move(COA1)
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    w.net.run_for(2 * SECOND_NS)
    start = w.net.now
    brr = build_packet(CN_PC, COA1, IPPROTO_MH, encode(BindingRefreshRequest()), rh2_address=HOME)
    for i in range(6):
        w.net.inject("cn_pc", brr)
        w.net.run_for(17 * MS)
    w.net.run_for(3 * SECOND_NS)
    times = [e["t_ns"] for e in w.events_named("bu_sent", "mn") if e["peer"] == "2001:db8:4::1" and e["t_ns"] >= start]
    assert len(times) >= 3
    assert all(b - a >= SECOND_NS for a, b in zip(times, times[3:])), times  # never 4 within a second
    assert w.events_named("send_deferred", "mn")
    assert w.cn_pc.binding_for(HOME).careof == COA1


def test_a_storm_of_moves_gets_at_most_three_bus_a_second_per_peer_and_ends_bound_at_the_last():
    w = make_world()
    start = w.net.now
    for i in range(40):  # 40 moves in 2 s, alternating
        w.move(COA1 if i % 2 == 0 else COA2)
        w.net.run_for(50 * MS)
    final = COA2
    assert w.net.run_until(lambda: w.bound_everywhere(final), 20 * SECOND_NS)
    for peer in ("2001:db8:1::1", "2001:db8:4::1"):
        times = [e["t_ns"] for e in w.events_named("bu_sent", "mn") if e["peer"] == peer and e["t_ns"] >= start]
        assert all(b - a >= SECOND_NS for a, b in zip(times, times[3:])), (peer, times)
    for kind in ("hoti_sent", "coti_sent"):
        times = [e["t_ns"] for e in w.events_named(kind, "mn")]
        assert all(b - a >= SECOND_NS for a, b in zip(times, times[3:])), (kind, times)
