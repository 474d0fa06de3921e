"""Sequence persistence, ``strict`` and ``reserve: N`` (issue 12 item 2; R4, R13, R14).

Engines on the simulated network, each node's records on its own simulated disk; a restart is
a kill -9: a new engine built from what the disk holds, nothing else (bindings, timers,
in-memory numbers gone). In both modes no captured BU is accepted again after a restart, for
the CN's, the HA's and the MN's own records; under a reserve the disk is written once per N
numbers, a restarted CN or HA refuses up to its mark with BA 135 carrying it, and the MN is
bound again after one extra round trip.
"""

from __future__ import annotations

import pytest
from engine_fixtures import CN_PC, COA1, COA2, HOME, MS, delay, make_world, preconfigured

from testbed.mip6 import ha as ha_module
from testbed.mip6.cn import record_key
from testbed.mip6.constants import BAStatus, MHType
from testbed.mip6.events import (
    BaReceived,
    BaSent,
    BindingCreated,
    BindingUpdated,
    BuRejected,
    BuSent,
    CnRegistered,
    HomeBindingCreated,
    HomeBindingUpdated,
)
from testbed.mip6.messages import decode
from testbed.mip6.packet import parse_packet
from testbed.mip6.persistence import MAX_RESERVE, STRICT, Persistence, SeqRecord, SeqState, advance_to
from testbed.mip6.seqno import KBM_MAX_ADVANCE, SEQ_MAX

N = 8
RESERVE = Persistence(N)
MODES = {"strict": STRICT, "reserve": RESERVE}
CN_PC_TEXT = "2001:db8:4::1"


# ------------------------------------------------------------------ the policy, pure


def test_strict_writes_every_number_and_reserve_only_past_the_mark():
    state, record = advance_to(None, 1, 1, STRICT)
    assert record == SeqRecord(1, 1) and state == SeqState(1, 1, 1)
    state, record = advance_to(state, 2, 2, STRICT)
    assert record == SeqRecord(2, 2)

    state, record = advance_to(None, 1, 1, RESERVE)
    assert record == SeqRecord(1 + N, 1 + N) and state == SeqState(1, 1, 1 + N)
    written = []
    for seq in range(2, 2 + 3 * N):
        state, record = advance_to(state, seq, seq, RESERVE)
        if record is not None:
            written.append((seq, record))
    # a write when a number passes the mark, holding that number + N, and no other
    assert written == [(1 + N + 1, SeqRecord(2 + 2 * N, 2 + 2 * N)), (2 + 2 * N + 1, SeqRecord(3 + 3 * N, 3 + 3 * N))]
    assert state.last == 1 + 3 * N and state.advance == 1 + 3 * N


def test_the_mark_wraps_modulo_2_16():
    state, record = advance_to(SeqState(SEQ_MAX - 2, 5, SEQ_MAX - 2), SEQ_MAX - 1, 6, RESERVE)
    assert record == SeqRecord((SEQ_MAX - 1 + N) & SEQ_MAX, 6 + N)
    # numbers past the wrap but not past the mark are covered
    state, record = advance_to(state, 1, 8, RESERVE)
    assert record is None and state.mark == (SEQ_MAX - 1 + N) & SEQ_MAX


def test_a_reserve_counts_against_the_r13_limit_and_never_reaches_past_it():
    state, record = advance_to(SeqState(100, KBM_MAX_ADVANCE - 5, 100), 101, KBM_MAX_ADVANCE - 4, RESERVE,
                               KBM_MAX_ADVANCE)
    assert record == SeqRecord(105, KBM_MAX_ADVANCE)  # the reserve shrank from 8 to 4
    state, record = advance_to(SeqState(100, KBM_MAX_ADVANCE - 1, 100), 101, KBM_MAX_ADVANCE, RESERVE,
                               KBM_MAX_ADVANCE)
    assert record == SeqRecord(101, KBM_MAX_ADVANCE)  # none left: strict for the last number


@pytest.mark.parametrize("bad", [-1, MAX_RESERVE + 1, 1.5, True, "8"])
def test_a_reserve_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="reserve"):
        Persistence(bad)


# ------------------------------------------------------------------ engines on the simulated network


def _world(modes: dict, data=None):
    return make_world(data=data or preconfigured(), persistence=modes)


def _bound(world, coa):
    assert world.net.run_until(lambda: world.bound_everywhere(coa), 10_000 * MS), world.net.events[-5:]


def _captured(world, src: str, dst: str, seq: int) -> bytes:
    for _, s, d, pkt in world.net.wire:
        if s == src and d == dst:
            p = parse_packet(pkt)
            if p.payload[2] == MHType.BU and decode(p.payload).seq == seq:
                return pkt
    raise AssertionError(f"no BU {seq} from {src} to {dst} on the wire")


def _replay(world, packet: bytes) -> list:
    start = len(world.net.events)
    world.net.inject("attacker", packet)
    world.net.run_for(200 * MS)
    return world.net.events[start:]


class Writes:
    """Every record a node's engine asked to make durable, in order."""

    def __init__(self, world) -> None:
        self.log: list[tuple[str, str, SeqRecord]] = []
        world.net.persist_failure = lambda node, p: self.log.append((node, p.store_key, p.record))

    def of(self, node: str) -> list[SeqRecord]:
        return [r for n, _, r in self.log if n == node]


@pytest.mark.parametrize("mode", MODES)
def test_cn_killed_then_a_captured_bu_is_refused(mode):
    data = preconfigured()
    w = _world({"cn_pc": MODES[mode]}, data)
    writes = Writes(w)
    w.move(COA1)
    _bound(w, COA1)
    old = _captured(w, "mn", "cn_pc", 1)
    for coa in (COA2, COA1, COA2):
        w.net.run_for(1000 * MS)
        w.move(coa)
        _bound(w, coa)
    accepted = w.cn_pc.binding_for(HOME).seq
    assert accepted == 4
    # strict: one write per accepted number; reserve: one write for the first 1 + N numbers
    assert writes.of("cn_pc") == ([SeqRecord(s, s) for s in range(1, 5)] if mode == "strict" else [SeqRecord(1 + N, 1 + N)])
    mark = w.cn_pc_store[record_key(data)].last
    cn = w.restart("cn_pc")  # kill -9: only the disk survives
    events = _replay(w, old)
    assert cn.binding_for(HOME) is None
    assert not [e for e in events if isinstance(e, (BindingCreated, BindingUpdated))]
    assert [(e.status, e.seq) for e in events if isinstance(e, BaSent)] == [(BAStatus.SEQUENCE_OUT_OF_WINDOW, mark)]
    assert [e.last_seq for e in events if isinstance(e, BuRejected)] == [mark]
    # also the last BU the CN accepted before the crash (under a reserve: everything up to the mark)
    events = _replay(w, _captured(w, "mn", "cn_pc", accepted))
    assert cn.binding_for(HOME) is None and [e.status for e in events if isinstance(e, BaSent)] == [135]


@pytest.mark.parametrize("mode", MODES)
def test_after_a_cn_restart_the_mn_is_bound_again_within_one_extra_round_trip(mode):
    w = _world({"cn_pc": MODES[mode]})
    w.move(COA1)
    _bound(w, COA1)
    w.net.run_for(1000 * MS)
    w.restart("cn_pc")
    start, t_move = len(w.net.events), w.net.now
    w.move(COA2)
    _bound(w, COA2)
    events = w.net.events[start:]
    registered = [e for e in events if isinstance(e, CnRegistered) and e.peer == CN_PC_TEXT]
    statuses = [e.status for e in events if isinstance(e, BaReceived) and e.peer == CN_PC_TEXT]
    rtt = 2 * delay("mn", "cn_pc")
    if mode == "strict":  # nothing lost: accepted at once
        assert statuses == [BAStatus.ACCEPTED]
        assert registered[0].t_ns - t_move == rtt
    else:  # BA 135 carrying the mark, then the MN goes on after it: one extra round trip
        assert statuses == [BAStatus.SEQUENCE_OUT_OF_WINDOW, BAStatus.ACCEPTED]
        assert registered[0].t_ns - t_move == 2 * rtt
        assert registered[0].seq == 1 + N + 1
    assert w.cn_pc.binding_for(HOME).careof == COA2


@pytest.mark.parametrize("mode", MODES)
def test_ha_killed_then_a_captured_home_registration_is_refused(mode):
    w = _world({"ha": MODES[mode]})
    writes = Writes(w)
    w.move(COA1)
    _bound(w, COA1)
    old = _captured(w, "mn", "ha", 1)
    w.net.run_for(1000 * MS)
    w.move(COA2)
    _bound(w, COA2)
    key = ha_module.record_key(HOME)
    assert writes.of("ha") == ([SeqRecord(1, 1), SeqRecord(2, 2)] if mode == "strict" else [SeqRecord(1 + N, 1 + N)])
    mark = w.net.durable["ha"][key].last
    ha = w.restart("ha")
    events = _replay(w, old)
    assert HOME not in ha.bindings
    assert not [e for e in events if isinstance(e, (HomeBindingCreated, HomeBindingUpdated))]
    assert [(e.status, e.seq) for e in events if isinstance(e, BaSent)] == [(BAStatus.SEQUENCE_OUT_OF_WINDOW, mark)]
    # and the MN registers again, after the mark under a reserve
    w.net.run_for(1000 * MS)
    w.move(COA1)
    _bound(w, COA1)
    assert ha.bindings[HOME].careof == COA1 and ha.bindings[HOME].seq == (3 if mode == "strict" else 1 + N + 1)


@pytest.mark.parametrize("mode", MODES)
def test_mn_killed_never_sends_a_number_twice(mode):
    """The MN's own numbers (home registration and each correspondent): after a kill -9 it
    goes on after what its disk holds, so its new BUs are accepted at once (no BA 135) and no
    number it sent before the crash is used again."""
    data = preconfigured()
    w = _world({"mn": MODES[mode]}, data)
    writes = Writes(w)
    w.move(COA1)
    _bound(w, COA1)
    w.net.run_for(1000 * MS)
    w.move(COA2)
    _bound(w, COA2)
    mn_writes = writes.of("mn")
    # strict: a write per BU (HA, RR CN, precomputed CN, twice each); reserve: one per peer
    assert len(mn_writes) == (6 if mode == "strict" else 3)
    sent_before = {(e.peer, e.seq) for e in w.net.events_of(BuSent, "mn")}
    start = len(w.net.events)
    w.restart("mn")
    w.net.run_for(1000 * MS)
    w.move(COA1)
    _bound(w, COA1)
    after = w.net.events[start:]
    sent_after = [(e.peer, e.seq) for e in after if isinstance(e, BuSent)]
    assert sent_after and not set(sent_after) & sent_before
    assert {e.status for e in after if isinstance(e, BaReceived)} == {BAStatus.ACCEPTED}
    if mode == "reserve":
        assert {seq for _, seq in sent_after} == {1 + N + 1}
        assert w.mn.bul[CN_PC].advance == 1 + N + 1  # the skipped numbers count against R13
    # an attacker replaying the MN's first BUs gets nowhere (the HA refuses its old timestamp first)
    for dst, status in (("cn_pc", BAStatus.SEQUENCE_OUT_OF_WINDOW), ("ha", BAStatus.MIPV6_ID_MISMATCH)):
        events = _replay(w, _captured(w, "mn", dst, 1))
        assert [e.status for e in events if isinstance(e, BaSent)] == [status]
        assert not [e for e in events if isinstance(e, (BindingUpdated, HomeBindingUpdated))]
    assert w.bound_everywhere(COA1) and w.ha.bindings[HOME].careof == COA1


def test_a_reserve_skipped_by_a_restart_is_counted_against_the_keys_limit():
    """R13: the CN's record holds the advance with the reserve, so what a restart skips is
    spent; the numbers left for the key shrink by N per restart."""
    data = preconfigured()
    w = _world({"cn_pc": RESERVE, "mn": RESERVE}, data)
    coas = [COA1, COA2]
    for restart in range(3):
        w.move(coas[restart % 2])
        _bound(w, coas[restart % 2])
        w.net.run_for(1000 * MS)
        w.restart("cn_pc")
        w.restart("mn")
    record = w.cn_pc_store[record_key(data)]
    # each life accepted one number and reserved N: the durable advance is 3 (1 + N)
    assert record.advance == 3 * (1 + N)
    assert record.last == 3 * (1 + N)
