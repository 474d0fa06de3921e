"""Rehearsals (keep_warm_ms): a throwaway MN's move through throwaway engines of the agent's
role; nothing leaves, the throwaway parties bind, and they are made again before R13."""

from __future__ import annotations

import ipaddress

import pytest

from testbed.agent import rehearsal
from testbed.agent.rehearsal import CAREOF, Rehearsal
from testbed.mip6.persistence import STRICT, Persistence


@pytest.mark.parametrize("role, handled", [("cn", 1), ("ha", 1), ("mn", 2)])
@pytest.mark.parametrize("persistence", [STRICT, Persistence(100)])
def test_each_rehearsal_binds_the_throwaway_mn_where_it_moved(role, handled, persistence):
    """A CN's or HA's throwaway engine accepts each BU (bound at the new care-of address);
    an MN's throwaway MN sends its two BUs from the new one."""
    r = Rehearsal(role, persistence)
    for i in range(6):
        assert r.run() == handled
        assert r.bound_careof() == CAREOF[i & 1]
    assert r.runs == 6


def test_an_mn_rehearsal_sends_a_home_bu_and_a_precomputed_bu_from_the_new_careof():
    r = Rehearsal("mn", STRICT)
    packets = Rehearsal._render(r._mn.move(CAREOF[1], 10**9))
    assert len(packets) == 2 and all(p[8:24] == CAREOF[1] for p in packets)
    assert {p[24:40] for p in packets} == {rehearsal.HOME_AGENT.packed, rehearsal.CORRESPONDENT.packed}


def test_the_throwaway_parties_are_made_again_before_the_r13_bound(monkeypatch):
    assert rehearsal.RENEW_EVERY * 2 < 2**15  # at most two numbers a rehearsal (the MN's two BUs)
    monkeypatch.setattr(rehearsal, "RENEW_EVERY", 3)
    r = Rehearsal("cn", STRICT)
    first = r._engine
    for i in range(7):
        assert r.run() == 1 and r.bound_careof() == CAREOF[i % 3 & 1]  # a new MN starts at the first again
    assert r._engine is not first and r.runs == 7


def test_rehearsal_addresses_are_documentation_addresses_of_their_own():
    doc = ipaddress.IPv6Network("2001:db8::/32")
    for a in (rehearsal.HOME_ADDRESS, rehearsal.HOME_AGENT, rehearsal.CORRESPONDENT,
              *(ipaddress.IPv6Address(c) for c in CAREOF)):
        assert a in doc and a.packed[4:6] in (b"\xff\xfd", b"\xff\xfe", b"\xff\xff")


def test_unknown_role_is_refused():
    with pytest.raises(ValueError):
        Rehearsal("router", STRICT)
