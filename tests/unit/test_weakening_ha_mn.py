"""Test-only weakenings of the home agent and the mobile node (testbed/mip6/weakening.py):
each one, given to the engine alone, changes the outcome of one crafted input (the packets
are the conformance tester's, ``testbed.lab.craft``), and without it the engine keeps the
defence. The agents' ``*_keeps_serving`` are the daemon's (tests/agent)."""

from __future__ import annotations

import ipaddress
import os

import pytest

from testbed.errors import ConfigError
from testbed.lab import craft
from testbed.mip6.actions import Send
from testbed.mip6.constants import SECOND_NS
from testbed.mip6.ha import HomeAgent
from testbed.mip6.mn import MobileNode
from testbed.mip6.mnha import MnHaSecurityAssociation
from tests.unit.engine_fixtures import CN_PC, CN_RR, COA1, COA2, HA, HOME, HOME_PREFIX, MN_HA_SA, SeededRng
from tests.unit.engine_fixtures import events as named_events
from tests.unit.engine_fixtures import preconfigured

OUTSIDE = ipaddress.IPv6Address("2001:db8:5::100")
OUTSIDE_SA = MnHaSecurityAssociation(OUTSIDE, ipaddress.IPv6Address(HA), 0x2002,
                                     bytes.fromhex("77a1c93e05d24f6b8a90e3d1c47b2f58069ed41a"))
KEYS = craft.MnHaKeys.of(MN_HA_SA)
SEC = SECOND_NS


def sent(actions) -> list[craft.Reply]:
    return [craft.read(a.packet) for a in actions if type(a) is Send]


def names(actions) -> list[str]:
    return [e["event"] for e in named_events(actions)]


# ------------------------------------------------------------------ home agent


def ha(*weaken) -> HomeAgent:
    return HomeAgent(HA, HOME_PREFIX, keys={HOME: MN_HA_SA, OUTSIDE.packed: OUTSIDE_SA}, weaken=frozenset(weaken))


def reg(seq, *, coa=COA1, home=HOME, sa=MN_HA_SA, ts=-1, lifetime=100, auth_ok=True) -> bytes:
    return craft.home_registration(coa, HA, home=home, seq=seq, lifetime=lifetime,
                                   timestamp=seq * 1000 if ts == -1 else ts, spi=sa.spi, key=sa.key, auth_ok=auth_ok)


def ba_status(actions) -> int | None:
    bas = [r for r in sent(actions) if r.mh_type == craft.BA]
    return bas[0].status if bas else None


@pytest.mark.parametrize("weak", [False, True])
def test_ha_auth_a_forged_home_registration(weak):
    out = ha(*(["ha_auth"] if weak else [])).receive(reg(1, auth_ok=False), 1)
    assert ba_status(out) == (0 if weak else 146)


@pytest.mark.parametrize("weak", [False, True])
def test_ha_replay_option_a_registration_without_a_timestamp(weak):
    out = ha(*(["ha_replay_option"] if weak else [])).receive(reg(1, ts=None), 1)
    assert ba_status(out) == (0 if weak else 145)


@pytest.mark.parametrize("weak", [False, True])
def test_ha_timestamp_a_replayed_timestamp(weak):
    engine = ha(*(["ha_timestamp"] if weak else []))
    assert ba_status(engine.receive(reg(1, ts=500), 1)) == 0
    assert ba_status(engine.receive(reg(2, ts=500), 2)) == (0 if weak else 144)


@pytest.mark.parametrize("weak", [False, True])
def test_ha_ba_auth_the_ba_is_not_authenticated(weak):
    out = ha(*(["ha_ba_auth"] if weak else [])).receive(reg(1), 1)
    (ba,) = [r for r in sent(out) if r.mh_type == craft.BA]
    assert ba.status == 0
    assert ba.mn_ha_valid(KEYS.key, COA1, HOME) is not weak


@pytest.mark.parametrize("weak", [False, True])
def test_ha_home_prefix_a_home_address_outside_the_prefix(weak):
    out = ha(*(["ha_home_prefix"] if weak else [])).receive(reg(1, home=OUTSIDE.packed, sa=OUTSIDE_SA), 1)
    assert ba_status(out) == (0 if weak else 132)


@pytest.mark.parametrize("weak", [False, True])
def test_ha_sequence_a_stale_sequence_number(weak):
    engine = ha(*(["ha_sequence"] if weak else []))
    assert ba_status(engine.receive(reg(5, ts=1), 1)) == 0
    assert ba_status(engine.receive(reg(5, coa=COA2, ts=2), 2)) == (0 if weak else 135)


@pytest.mark.parametrize("weak", [False, True])
def test_ha_tunnel_packets_for_a_registered_home_address(weak):
    engine = ha(*(["ha_tunnel"] if weak else []))
    engine.receive(reg(1), 1)
    out = engine.receive(craft.plain(CN_RR, HOME, b"data"), 2)
    assert [r.next_header for r in sent(out)] == ([] if weak else [craft.IPV6_IN_IPV6])


@pytest.mark.parametrize("weak", [False, True])
def test_ha_reverse_tunnel_from_another_care_of_address(weak):
    engine = ha(*(["ha_reverse_tunnel"] if weak else []))
    engine.receive(reg(1), 1)
    hoti = craft.home_test_init(HOME, CN_RR, os.urandom(8))
    assert len(sent(engine.receive(craft.tunnelled(COA1, HA, hoti), 2))) == 1
    assert len(sent(engine.receive(craft.tunnelled(COA2, HA, hoti), 3))) == (1 if weak else 0)


@pytest.mark.parametrize("weak", [False, True])
def test_ha_dereg_leaves_the_binding(weak):
    engine = ha(*(["ha_dereg"] if weak else []))
    engine.receive(reg(1), 1)
    assert ba_status(engine.receive(reg(2, lifetime=0), 2)) == 0
    assert (HOME in engine.bindings) is weak


def test_a_home_agent_refuses_another_roles_weakening():
    with pytest.raises(ConfigError, match="not a weakening of a ha agent"):
        ha("auth")
    assert ha()._weak is False


# ------------------------------------------------------------------ mobile node

DATA = preconfigured()
PAIR = craft.PairKeys.of(DATA)


def mn(*weaken) -> MobileNode:
    return MobileNode(HOME, HA, mn_ha=MN_HA_SA, correspondents=[CN_RR], peers=[DATA], rng=SeededRng(3),
                      weaken=frozenset(weaken))


def of_kind(actions, mh_type: int, dst: bytes | None = None) -> list[craft.Reply]:
    out = []
    for r in sent(actions):
        r = r.inner() if r.next_header == craft.IPV6_IN_IPV6 else r
        if r.mh_type == mh_type and (dst is None or r.final_destination == dst):
            out.append(r)
    return out


def home_ba(bu: craft.Reply, *, auth_ok: bool = True) -> bytes:
    ba = craft.binding_ack(HA, COA1, home=HOME, status=0, seq=bu.seq, lifetime=bu.lifetime,
                           timestamp=bu.replay_timestamp(), mn_ha=KEYS)
    return ba if auth_ok else craft._set_tail(ba, bytes(12))


def cn_ba(bu: craft.Reply, *, status: int = 0, seq: int | None = None, authenticated: bool = True) -> bytes:
    return craft.binding_ack(CN_PC, COA1, home=HOME, status=status, seq=bu.seq if seq is None else seq,
                             lifetime=bu.lifetime if status == 0 else 0,
                             key=PAIR.kbm(COA1) if authenticated else None)


def moved(engine: MobileNode, t: int = SEC, *, home_answered: bool = True):
    """Move to COA1 (answering the home registration); the home BU and the precomputed BU."""
    out = engine.move(COA1, t)
    (home,) = of_kind(out, craft.BU, HA)
    (bu,) = of_kind(out, craft.BU, CN_PC)
    if home_answered:
        engine.receive(home_ba(home), t + 1)
    return home, bu


@pytest.mark.parametrize("weak", [False, True])
def test_mn_first_reg_timeout(weak):
    engine = mn(*(["mn_first_reg_timeout"] if weak else []))
    moved(engine, home_answered=False)
    assert engine.home.bu_retx.at - SEC == (1 if weak else 1.5) * SEC


@pytest.mark.parametrize("weak", [False, True])
def test_mn_home_replay_the_home_registration_has_no_timestamp(weak):
    home, _ = moved(mn(*(["mn_home_replay"] if weak else [])), home_answered=False)
    assert home.mn_ha_valid(KEYS.key, COA1, HOME)
    assert (home.replay_timestamp() is None) is weak


@pytest.mark.parametrize("weak", [False, True])
def test_mn_nonce_indices_in_a_precomputed_bu(weak):
    _, bu = moved(mn(*(["mn_nonce_indices"] if weak else [])))
    assert bu.bad_valid(PAIR.kbm(COA1), COA1, CN_PC)
    assert (bu.option(craft.OPT_NONCE) is not None) is weak


@pytest.mark.parametrize("weak", [False, True])
def test_mn_hoti_direct_not_through_the_home_agent(weak):
    engine = mn(*(["mn_hoti_direct"] if weak else []))
    out = engine.move(COA1, SEC)
    (home,) = of_kind(out, craft.BU, HA)
    out = engine.receive(home_ba(home), SEC + 1)  # the HoTI waited for the home registration
    hotis = [r for r in sent(out) if (r.inner() or r).mh_type == craft.HOTI]
    assert [r.next_header for r in hotis] == [craft.MH if weak else craft.IPV6_IN_IPV6]


@pytest.mark.parametrize("weak", [False, True])
def test_mn_retransmit_after_ba_0(weak):
    engine = mn(*(["mn_retransmit"] if weak else []))
    _, bu = moved(engine)
    engine.receive(cn_ba(bu), SEC + 2)
    assert engine.bul[CN_PC].state == ("bu_sent" if weak else "bound")
    assert bool(of_kind(engine.handle_timer(3 * SEC), craft.BU, CN_PC)) is weak


@pytest.mark.parametrize("weak", [False, True])
def test_mn_cn_ba_auth_an_unauthenticated_ba(weak):
    engine = mn(*(["mn_cn_ba_auth"] if weak else []))
    _, bu = moved(engine)
    engine.receive(cn_ba(bu, authenticated=False), SEC + 2)
    assert engine.bul[CN_PC].state == ("bound" if weak else "bu_sent")


@pytest.mark.parametrize("weak", [False, True])
def test_mn_resync_ba_135(weak):
    engine = mn(*(["mn_resync"] if weak else []))
    _, bu = moved(engine)
    out = engine.receive(cn_ba(bu, status=135, seq=bu.seq + 500), SEC + 2)
    assert [r.seq for r in of_kind(out, craft.BU, CN_PC)] == ([] if weak else [bu.seq + 501])


@pytest.mark.parametrize("weak", [False, True])
def test_mn_bidding_down_binding_errors_and_bas_136_to_138(weak):
    for message in ("be", "ba"):
        engine = mn(*(["mn_bidding_down"] if weak else []))
        _, bu = moved(engine)
        if message == "be":
            pkt = craft.binding_error(CN_PC, COA1, status=1, home=HOME)
        else:
            pkt = cn_ba(bu, status=136, authenticated=False)
        out = engine.receive(pkt, SEC + 2)
        rr = of_kind(out, craft.HOTI, CN_PC) + of_kind(out, craft.COTI, CN_PC)
        assert bool(rr) is weak, message
        assert engine.bul[CN_PC].mechanism == ("rr" if weak else "precomputed")


def bound(engine: MobileNode) -> craft.Reply:
    _, bu = moved(engine)
    engine.receive(cn_ba(bu), SEC + 2)
    assert engine.bul[CN_PC].state == "bound"
    return bu


@pytest.mark.parametrize("weak", [False, True])
def test_mn_brr_a_binding_refresh_request(weak):
    engine = mn(*(["mn_brr"] if weak else []))
    bound(engine)
    out = engine.receive(craft.binding_refresh_request(CN_PC, COA1, home=HOME), 3 * SEC)
    assert bool(of_kind(out, craft.BU, CN_PC)) is not weak


@pytest.mark.parametrize("weak", [False, True])
def test_mn_rate_limit_four_bus_within_a_second(weak):
    engine = mn(*(["mn_rate_limit"] if weak else []))
    bound(engine)
    got = 0
    for i in range(4):  # each BRR's BU answered, so the entry is bound for the next BRR
        out = engine.receive(craft.binding_refresh_request(CN_PC, COA1, home=HOME), 3 * SEC + i * 10_000_000)
        for bu in of_kind(out, craft.BU, CN_PC):
            got += 1
            engine.receive(cn_ba(bu), 3 * SEC + i * 10_000_000 + 1)
    assert got == (4 if weak else 3)


@pytest.mark.parametrize("weak", [False, True])
def test_mn_home_ba_auth_a_forged_home_ba(weak):
    engine = mn(*(["mn_home_ba_auth"] if weak else []))
    home, _ = moved(engine, home_answered=False)
    engine.receive(home_ba(home, auth_ok=False), SEC + 1)
    assert engine.home.state == ("bound" if weak else "bu_sent")


@pytest.mark.parametrize("weak", [False, True])
def test_mn_r13_no_bound_on_the_advance(weak):
    engine = mn(*(["mn_r13"] if weak else []))
    _, bu = moved(engine)
    t = SEC + 2
    for step in (16000, 16000, 2000):
        t += 2 * SEC  # MAX_UPDATE_RATE: each BU in a second of its own
        out = engine.receive(cn_ba(bu, status=135, seq=(bu.seq + step) & 0xFFFF), t)
        bus = of_kind(out, craft.BU, CN_PC)
        if not bus:
            break
        bu = bus[0]
    assert ("rekey_required" in names(out)) is not weak
    assert bool(bus) is weak


def test_a_mobile_node_refuses_another_roles_weakening():
    with pytest.raises(ConfigError, match="not a weakening of a mn agent"):
        mn("ha_auth")
    assert mn()._weak is False
