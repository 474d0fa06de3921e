"""Binding expiry through the engines' timer (BindingCache): ``next_timer`` is always the
earliest expiry of a live binding, and ``handle_timer`` expires exactly the bindings due,
whatever the order of creations, refreshes, moves and deletions."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from testbed.lab.fleet import HOME_BASE, Fleet, careof
from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.constants import IPPROTO_MH, LIFETIME_UNIT_S, SECOND_NS
from testbed.mip6.keys import generate
from testbed.mip6.messages import BindingUpdate
from testbed.mip6.packet import build_packet
from testbed.mip6.sealing import seal_bad

CN = ipaddress.IPv6Address("2001:db8:e:1::2")
PEERS = [generate(HOME_BASE + i, CN) for i in range(4)]

ops = st.lists(st.one_of(
    st.tuples(st.just("bu"), st.integers(0, 3), st.integers(0, 30), st.integers(0, 2)),  # peer, lifetime, CoA
    st.tuples(st.just("tick"), st.integers(0, 40 * LIFETIME_UNIT_S * SECOND_NS)),
), max_size=40)


@given(ops)
def test_next_timer_is_the_earliest_live_expiry_and_handle_timer_expires_exactly_the_due(operations):
    engine = CorrespondentNode(CN.packed, peers=PEERS)
    fleet = Fleet.build(CN.packed, 4, dict(enumerate(PEERS)))
    now = 0
    for op in operations:
        if op[0] == "bu":
            _, i, lifetime, where = op
            m = fleet.mobiles[i]
            m.last_seq += 1
            coa = m.home if where == 2 else careof(i, where)  # CoA = home address: deregistration
            mh = seal_bad(BindingUpdate(m.last_seq, lifetime, ack=True), m.precomputed_kbm(coa) if coa != m.home
                          else _dereg_kbm(engine, m.home), coa, CN.packed)
            engine.receive(build_packet(coa, CN.packed, IPPROTO_MH, mh, home_address=m.home), now)
        else:
            now += op[1]
            due = {h for h, b in engine.bindings.items() if b.expires_ns <= now}
            expired = engine.handle_timer(now)
            assert {ipaddress.IPv6Address(e.home).packed for e in expired} == due
            assert all(b.expires_ns > now for b in engine.bindings.values())
        want = min((b.expires_ns for b in engine.bindings.values()), default=None)
        assert engine.next_timer() == want


def _dereg_kbm(engine, home):
    return engine._peers[home].kbm(home, True)
