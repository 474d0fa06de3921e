"""Issue 9 against a running home-agent agent: BA 132 only after authentication, and then
authenticated with replay protection; unrecognised destination options discarded."""

from __future__ import annotations

import ipaddress
import signal

import pytest
from agent_proc import AgentProc, exchange
from netns_pair import netns_pair
from wire import with_dest_option

from testbed.mip6.constants import IPPROTO_MH, BAStatus
from testbed.mip6.messages import BindingUpdate, decode
from testbed.mip6.mnha import dump_mn_ha, generate_mn_ha
from testbed.mip6.options import ReplayProtection
from testbed.mip6.packet import build_packet
from testbed.mip6.sealing import mn_ha_valid, seal_mn_ha
from testbed.storage.secretfiles import write_secret_text

pytestmark = pytest.mark.lab

HOME = "2001:db8:1::100"
ELSEWHERE = "2001:db8:9::100"  # an MN the HA has a key for, whose home address is not on its link
HA = "2001:db8:1::1"
COA = "2001:db8:11::100"


def A(text):
    return ipaddress.IPv6Address(text).packed


@pytest.fixture
def lab(tmp_path):
    with netns_pair([f"{COA}/64"], [f"{HA}/64"], a_routes=((f"{HA}/128", None),),
                    b_routes=(("2001:db8:11::/64", None),)) as (tag, mn_ns, ha_ns):
        home, elsewhere = generate_mn_ha(HOME, HA), generate_mn_ha(ELSEWHERE, HA)
        write_secret_text(tmp_path / "home.yaml", dump_mn_ha(home))
        write_secret_text(tmp_path / "elsewhere.yaml", dump_mn_ha(elsewhere))
        agent = AgentProc(ha_ns, tmp_path, "ha", {
            "role": "ha", "address": HA, "home_prefix": "2001:db8:1::/64",
            "mn_ha_keys": [str(tmp_path / "home.yaml"), str(tmp_path / "elsewhere.yaml")],
        }).start()
        try:
            yield agent, mn_ns, home, elsewhere
        finally:
            agent.stop(signal.SIGKILL)


def home_bu(sa, home, seq, ts, key=None):
    msg = BindingUpdate(seq, 50, ack=True, home=True, options=(ReplayProtection(ts),))
    mh = seal_mn_ha(msg, sa.spi, key or sa.key, A(COA), A(home))
    return build_packet(A(COA), A(HA), IPPROTO_MH, mh, home_address=A(home))


def test_ba_132_comes_only_after_authentication_and_is_itself_authenticated(lab):
    """It was a bare 132, for any BU, forged ones included, before the authenticator was
    looked at; an RFC 4285 MN (ours too) drops a BA without MN-HA authentication."""
    agent, mn_ns, home, elsewhere = lab
    (p,) = exchange(mn_ns, home_bu(elsewhere, ELSEWHERE, 1, 1000, key=b"\x5a" * 20))
    ba = decode(p.payload)
    assert ba.status == BAStatus.MIPV6_AUTH_FAIL and not ba.options  # the documented failure, not 132
    (p,) = exchange(mn_ns, home_bu(elsewhere, ELSEWHERE, 2, 2000))
    ba = decode(p.payload)
    assert ba.status == BAStatus.NOT_HOME_SUBNET and ba.seq == 2
    assert mn_ha_valid(ba, elsewhere.key, A(COA), A(ELSEWHERE))
    assert [o.timestamp for o in ba.options if type(o) is ReplayProtection] == [2000]
    assert p.rh2_address == A(ELSEWHERE) and p.dst == A(COA)
    rejected = [e for e in agent.events() if e["event"] == "bu_rejected"]
    assert [(e["home"], e["status"]) for e in rejected] == [(ELSEWHERE, 146), (ELSEWHERE, 132)]
    assert "outside the home prefix" in rejected[1]["reason"]
    assert agent.ctl("bindings")["bindings"] == []
    # The home MN is unaffected.
    assert decode(exchange(mn_ns, home_bu(home, HOME, 1, 3000))[0].payload).status == BAStatus.ACCEPTED


def test_home_registration_with_an_unrecognised_destination_option_is_discarded(lab):
    agent, mn_ns, home, elsewhere = lab
    for ts, option_type in ((1000, 0x7E), (2000, 0xBE), (3000, 0xFE)):
        pkt = with_dest_option(home_bu(home, HOME, ts // 1000, ts), option_type)
        got = exchange(mn_ns, pkt, deadline=1.0, want=2, errors=True)
        assert not [p for p in got if p.next_header == IPPROTO_MH]
        icmp = [p for p in got if p.next_header == 58]
        assert len(icmp) == (0 if option_type >> 6 == 1 else 1)
        for p in icmp:
            assert (p.payload[0], p.payload[1]) == (4, 2) and pkt[int.from_bytes(p.payload[4:8], "big")] == option_type
    assert agent.ctl("bindings")["bindings"] == []
    assert decode(exchange(mn_ns, home_bu(home, HOME, 4, 4000))[0].payload).status == BAStatus.ACCEPTED
