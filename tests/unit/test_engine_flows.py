"""MN, HA and two CNs (one by return routability, one with RFC 4449 preconfigured data)
running together in-process, exchanging real encoded packets over a simulated network."""

from __future__ import annotations

from engine_fixtures import (
    COA1,
    COA2,
    HOME,
    MS,
    delay,
    make_world,
    preconfigured,
)

from testbed.mip6.cn import record_key
from testbed.mip6.constants import BAStatus, MHType
from testbed.mip6.events import (
    BaSent,
    BindingCreated,
    BindingUpdated,
    BuRejected,
    CnRegistered,
    HomeRegistered,
    HotiSent,
)
from testbed.mip6.messages import decode
from testbed.mip6.options import BindingAuthData, NonceIndices
from testbed.mip6.packet import parse_packet
from testbed.mip6.persistence import SeqRecord

RR_TYPES = {MHType.HOTI, MHType.HOT, MHType.COTI, MHType.COT}


def rtt(a: str, b: str) -> int:
    return 2 * delay(a, b)


def _bound(world, coa):
    assert world.net.run_until(lambda: world.bound_everywhere(coa), 10_000 * MS), world.net.events[-5:]


def _mh_between(world, a, b, since=0):
    return [t for (src, dst, t) in world.wire_types(since) if {src, dst} == {a, b}]


def test_return_routability_binding_is_the_default_R12():
    """No preconfigured data for cn_rr: HoTI goes through the HA, CoTI direct, then BU/BA."""
    w = make_world()
    w.move(COA1)
    _bound(w, COA1)
    b = w.cn_rr.binding_for(HOME)
    assert b.mechanism == "rr" and b.careof == COA1
    # HoTI reached the CN from the HA (reverse-tunnelled), HoT went back through the HA.
    hoti_legs = [(s, d) for (s, d, t) in w.wire_types() if t == MHType.HOTI]
    assert ("mn", "ha") in hoti_legs and ("ha", "cn_rr") in hoti_legs
    hot_legs = [(s, d) for (s, d, t) in w.wire_types() if t == MHType.HOT]
    assert ("cn_rr", "ha") in hot_legs and ("ha", "mn") in hot_legs
    coti_legs = [(s, d) for (s, d, t) in w.wire_types() if t == MHType.COTI]
    assert coti_legs == [("mn", "cn_rr")]
    assert w.events_named("hoti_forwarded", "ha")


def test_precomputed_binding_sends_no_return_routability_messages_R5_R6_R7():
    w = make_world()
    w.move(COA1)
    _bound(w, COA1)
    assert w.cn_pc.binding_for(HOME).mechanism == "precomputed"
    types = _mh_between(w, "mn", "cn_pc")
    assert set(types) == {MHType.BU, MHType.BA}
    assert not RR_TYPES & set(types)
    for t, src, dst, pkt in w.net.wire:
        if {src, dst} != {"mn", "cn_pc"}:
            continue
        msg = decode(parse_packet(pkt).payload)
        assert type(msg.options[-1]) is BindingAuthData  # R5 (BU) and R7 (BA)
        assert not any(type(o) is NonceIndices for o in msg.options)  # R6: not sent
    ba = w.events_named("ba_received", "mn")
    assert any(e["mechanism"] == "precomputed" and e["authenticated"] for e in ba)


def test_handover_times_follow_the_analytical_model():
    """docs/protocol.md section 7, counted from the moment the CoA is usable."""
    w = make_world()
    t0 = w.net.now
    w.move(COA1)
    _bound(w, COA1)
    reg = {e["peer"]: e["t_ns"] - t0 for e in w.events_named("cn_registered", "mn")}
    pc = reg["2001:db8:4::1"]
    rr = reg["2001:db8:3::1"]
    assert pc == rtt("mn", "cn_pc")
    assert rr == max(2 * rtt("mn", "ha") + rtt("ha", "cn_rr"), rtt("mn", "cn_rr")) + rtt("mn", "cn_rr")
    # Second move within MAX_TOKEN_LIFETIME: the home token is reused, only CoTI/CoT + BU/BA.
    w.net.run_for(1000 * MS)
    t1 = w.net.now
    w.move(COA2)
    _bound(w, COA2)
    reg2 = {e["peer"]: e["t_ns"] - t1 for e in w.events_named("cn_registered", "mn") if e["t_ns"] >= t1}
    assert reg2["2001:db8:4::1"] == rtt("mn", "cn_pc")
    assert reg2["2001:db8:3::1"] == 2 * rtt("mn", "cn_rr")
    assert not [t for t in _mh_between(w, "ha", "cn_rr", since=t1) if t == MHType.HOTI]  # none reverse-tunnelled either


def test_without_home_token_reuse_every_move_is_return_routability_from_scratch():
    """reuse_home_token=False (the rr-scratch measurement): each move sends a HoTI through the
    home agent once the home registration carries the new CoA, as the model's third line."""
    w = make_world()
    w.mn.reuse_home_token = False
    w.move(COA1)
    _bound(w, COA1)
    w.net.run_for(1000 * MS)
    t1 = w.net.now
    w.move(COA2)
    _bound(w, COA2)
    reg = {e.peer: e.t_ns - t1 for e in w.net.events_of(CnRegistered, "mn") if e.t_ns >= t1}
    assert reg["2001:db8:3::1"] == max(2 * rtt("mn", "ha") + rtt("ha", "cn_rr"), rtt("mn", "cn_rr")) + rtt("mn", "cn_rr")
    assert reg["2001:db8:4::1"] == rtt("mn", "cn_pc")  # precomputed peers are not affected
    assert [t for t in _mh_between(w, "ha", "cn_rr", since=t1) if t == MHType.HOTI]  # reverse-tunnelled
    hoti = min(e.t_ns for e in w.net.events_of(HotiSent, "mn") if e.t_ns >= t1)
    home = min(e.t_ns for e in w.net.events_of(HomeRegistered, "mn") if e.t_ns >= t1)
    assert hoti == home  # not before the home registration carries the new CoA


def test_move_to_a_new_careof_address_updates_every_binding():
    w = make_world()
    w.move(COA1)
    _bound(w, COA1)
    w.net.run_for(10 * MS)
    w.move(COA2)
    _bound(w, COA2)
    assert w.ha.binding_for(HOME).careof == COA2
    assert w.cn_pc.binding_for(HOME).careof == COA2
    assert w.cn_rr.binding_for(HOME).careof == COA2
    assert w.events_named("binding_updated", "cn_pc")


def test_deregistration_on_return_home_deletes_the_bindings():
    w = make_world()
    w.move(COA1)
    _bound(w, COA1)
    w.move(HOME)
    assert w.net.run_until(
        lambda: w.cn_pc.binding_for(HOME) is None and w.cn_rr.binding_for(HOME) is None
        and w.ha.binding_for(HOME) is None and all(e.state == "bound" for e in w.mn.entries()),
        10_000 * MS,
    )
    assert w.events_named("binding_deleted", "cn_pc")
    assert w.events_named("binding_deleted", "cn_rr")
    assert w.events_named("home_binding_deleted", "ha")


def _captured_bu(world, to: str, seq: int) -> bytes:
    for t, src, dst, pkt in world.net.wire:
        if src == "mn" and dst == to:
            p = parse_packet(pkt)
            if p.payload[2] == MHType.BU and decode(p.payload).seq == seq:
                return pkt
    raise AssertionError(f"no BU seq {seq} to {to} on the wire")


def _replay_and_settle(world, target: str, packet: bytes):
    start = len(world.net.events)
    world.net.inject("attacker", packet)
    world.net.run_for(100 * MS)
    return world.net.events[start:]


def test_replayed_bu_is_refused_R14():
    w = make_world()
    w.move(COA1)
    _bound(w, COA1)
    old_pc = _captured_bu(w, "cn_pc", 1)
    w.net.run_for(10 * MS)
    w.move(COA2)
    _bound(w, COA2)
    new = _replay_and_settle(w, "cn_pc", old_pc)
    assert [e.status for e in new if type(e) is BaSent] == [BAStatus.SEQUENCE_OUT_OF_WINDOW]
    assert w.cn_pc.binding_for(HOME).careof == COA2
    # The same for the return-routability peer: the old BU is out of sequence.
    old_rr = _captured_bu(w, "cn_rr", 1)
    new = _replay_and_settle(w, "cn_rr", old_rr)
    assert not [e for e in new if type(e) in (BindingUpdated, BindingCreated)]
    assert w.cn_rr.binding_for(HOME).careof == COA2


def test_replayed_bu_is_refused_after_the_cn_is_rebuilt_from_its_store_R4():
    data = preconfigured()
    w = make_world(data=data)
    w.move(COA1)
    _bound(w, COA1)
    old = _captured_bu(w, "cn_pc", 1)
    w.net.run_for(10 * MS)
    w.move(COA2)
    _bound(w, COA2)
    # The CN restarts: a new engine, no bindings in memory, built from the records on its disk.
    cn = w.restart("cn_pc")
    new = _replay_and_settle(w, "cn_pc", old)
    assert cn.binding_for(HOME) is None
    assert [e.status for e in new if type(e) is BaSent] == [BAStatus.SEQUENCE_OUT_OF_WINDOW]
    rejected = [e for e in new if type(e) is BuRejected]
    assert rejected and rejected[0].last_seq == 2


def test_cn_sequence_number_is_durable_before_the_ba_leaves_R4():
    """The CN's Persist of the accepted number is carried out before its BA is sent."""
    data = preconfigured()
    w = make_world(data=data)
    log = []
    w.net.persist_failure = lambda node, p: log.append(("put", node, p.record.last)) if node == "cn_pc" else None
    w.net.filters.append(lambda src, dst, pkt: src != "cn_pc"
                         or log.append(("send", src, decode(parse_packet(pkt).payload).seq)) or True)
    w.move(COA1)
    _bound(w, COA1)
    assert log == [("put", "cn_pc", 1), ("send", "cn_pc", 1)]
    assert w.cn_pc_store[record_key(data)] == SeqRecord(1, 1)


def test_mn_recovers_from_ba_135_after_losing_its_sequence_numbers():
    data = preconfigured()
    w = make_world(data=data)
    w.move(COA1)
    _bound(w, COA1)
    # The MN is rebuilt with an empty store: it starts again at sequence number 1.
    w2 = make_world(data=data, disks={"cn_pc": w.cn_pc_store})
    w2.move(COA2)
    _bound(w2, COA2)
    statuses = [e["status"] for e in w2.events_named("ba_received", "mn") if e["peer"] == "2001:db8:4::1"]
    assert statuses == [BAStatus.SEQUENCE_OUT_OF_WINDOW, BAStatus.ACCEPTED]
    assert w2.cn_pc.binding_for(HOME).seq == 2  # continued after the last accepted (1)


def test_mn_sequence_numbers_survive_a_restart():
    data = preconfigured()
    w = make_world(data=data)
    w.move(COA1)
    _bound(w, COA1)
    w2 = make_world(data=data, disks=w.disks())
    w2.move(COA2)
    _bound(w2, COA2)
    statuses = [e["status"] for e in w2.events_named("ba_received", "mn") if e["peer"] == "2001:db8:4::1"]
    assert statuses == [BAStatus.ACCEPTED]  # no 135: the MN continued from its stored number


def test_bindings_are_refreshed_before_their_lifetime_runs_out():
    """RFC 6275 11.7.1: the MN sends new BUs before the granted lifetime ends, so the home
    agent's and both correspondents' bindings outlive it (RR and precomputed alike)."""
    w = make_world()
    w.move(COA1)
    _bound(w, COA1)
    lifetimes = {e.peer: e.lifetime for e in w.mn.entries()}
    assert all(units > 0 for units in lifetimes.values())
    longest_s = 4 * max(lifetimes.values())
    bound_at = w.net.now
    w.net.run_for(3 * longest_s * 1000 * MS)
    assert not w.events_named("binding_expired") and not w.events_named("home_binding_expired")
    for engine in (w.cn_rr, w.cn_pc):
        b = engine.binding_for(HOME)
        assert b is not None and b.careof == COA1 and b.expires_ns > w.net.now
    assert w.ha.bindings[HOME].careof == COA1 and w.ha.bindings[HOME].expires_ns > w.net.now
    refreshes = w.events_named("binding_refresh", "mn")
    by_mechanism = {m: [e["t_ns"] for e in refreshes if e["mechanism"] == m] for m in ("home", "rr", "precomputed")}
    assert all(len(times) >= 3 for times in by_mechanism.values()), by_mechanism
    # the first refresh comes at 3/4 of the granted lifetime, not earlier
    home_life_ns = 4 * w.mn.home.lifetime * 1000 * MS
    assert by_mechanism["home"][0] - bound_at <= home_life_ns * 3 // 4
    assert by_mechanism["home"][0] - bound_at >= home_life_ns * 3 // 4 - 1000 * MS
    # each refresh is a new, accepted BU: sequence numbers keep increasing at the CNs
    seqs = [e["seq"] for e in w.events_named("ba_sent", "cn_pc") if e["status"] == 0]
    assert len(seqs) >= 4 and seqs == sorted(seqs)
    assert all(e.state == "bound" for e in w.mn.entries())


def test_no_refresh_at_home():
    w = make_world()
    w.move(COA1)
    _bound(w, COA1)
    w.move(HOME)
    assert w.net.run_until(lambda: w.cn_rr.binding_for(HOME) is None and w.cn_pc.binding_for(HOME) is None
                           and HOME not in w.ha.bindings and all(e.state == "bound" for e in w.mn.entries()),
                           10_000 * MS)
    assert all(e.refresh_at == 0 for e in w.mn.entries())
    before = len(w.events_named("binding_refresh", "mn"))
    w.net.run_for(2000 * 1000 * MS)
    assert len(w.events_named("binding_refresh", "mn")) == before
