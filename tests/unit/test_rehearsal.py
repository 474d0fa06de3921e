"""Rehearsals (keep_warm_ms): a throwaway MN's move through throwaway engines of the agent's
role; nothing leaves, the throwaway parties bind, and they are made again before R13."""

from __future__ import annotations

import ipaddress

import pytest

from testbed.agent import rehearsal
from testbed.agent.rehearsal import CAREOF, Rehearsal
from testbed.mip6.persistence import STRICT, Persistence


@pytest.mark.parametrize("role, answering", [("cn", ["CorrespondentNode"]), ("ha", ["HomeAgent"]),
                                             ("mn", ["CorrespondentNode", "HomeAgent"])])
@pytest.mark.parametrize("persistence", [STRICT, Persistence(100)])
def test_each_rehearsal_binds_the_throwaway_mn_where_it_moved(role, answering, persistence):
    r = Rehearsal(role, persistence)
    for i in range(6):
        handled = r.run()
        assert handled == 2 * len(answering)  # each BU answered, each BA taken by the MN
        assert r.bound_careofs() == {name: CAREOF[i & 1] for name in answering}
    assert r.runs == 6


def test_the_throwaway_parties_are_made_again_before_the_r13_bound(monkeypatch):
    monkeypatch.setattr(rehearsal, "RENEW_EVERY", 3)
    r = Rehearsal("cn", STRICT)
    first = r._mn
    for _ in range(7):
        assert r.run() == 2
    assert r._mn is not first and r.runs == 7


def test_rehearsal_addresses_are_documentation_addresses_of_their_own():
    doc = ipaddress.IPv6Network("2001:db8::/32")
    for a in (rehearsal.HOME_ADDRESS, rehearsal.HOME_AGENT, rehearsal.CORRESPONDENT,
              *(ipaddress.IPv6Address(c) for c in CAREOF)):
        assert a in doc and a.packed[4:6] in (b"\xff\xfd", b"\xff\xfe", b"\xff\xff")


def test_unknown_role_is_refused():
    with pytest.raises(ValueError):
        Rehearsal("router", STRICT)
