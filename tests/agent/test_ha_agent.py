"""A real home-agent agent in its namespace: RFC 4285 home registration, the TUN-based data
plane tunnelling packets for the home address to the care-of address, and reverse-tunnelled
HoTI forwarded only from the registered care-of address."""

from __future__ import annotations

import ipaddress
import signal

import pytest
from agent_proc import AgentProc, exchange, wait_for
from netns_pair import netns_pair, sh

from testbed.mip6.constants import (
    IPPROTO_IPV6,
    IPPROTO_MH,
    IPPROTO_UDP,
    BAStatus,
    MHType,
)
from testbed.mip6.messages import BindingUpdate, HomeTestInit, decode, encode
from testbed.mip6.mnha import dump_mn_ha, generate_mn_ha
from testbed.mip6.options import ReplayProtection
from testbed.mip6.packet import build_packet, parse_packet
from testbed.mip6.sealing import mn_ha_valid, seal_mn_ha
from testbed.storage.secretfiles import write_secret_text

pytestmark = pytest.mark.lab

HOME = "2001:db8:1::100"
HA = "2001:db8:1::1"
COA = "2001:db8:11::100"
COA_OTHER = "2001:db8:11::200"
CN = "2001:db8:3::1"  # lives, for this test, beside the MN


def A(text):
    return ipaddress.IPv6Address(text).packed


@pytest.fixture
def lab(tmp_path):
    with netns_pair(
        [f"{COA}/64", f"{COA_OTHER}/64", f"{CN}/64"], [f"{HA}/64"],
        a_routes=((f"{HA}/128", None), (f"{HOME}/128", HA)),
        b_routes=(("2001:db8:11::/64", None), ("2001:db8:3::/64", None)),
        b_forwarding=True,
    ) as (tag, mn_ns, ha_ns):
        sa = generate_mn_ha(HOME, HA)
        write_secret_text(tmp_path / "mnha.yaml", dump_mn_ha(sa))
        agent = AgentProc(ha_ns, tmp_path, "ha", {
            "role": "ha", "address": HA, "home_prefix": "2001:db8:1::/64", "mn_ha_keys": [str(tmp_path / "mnha.yaml")],
        }).start()
        try:
            yield agent, mn_ns, ha_ns, sa
        finally:
            agent.stop(signal.SIGKILL)


def home_bu(sa, seq, ts, coa=COA):
    mh = seal_mn_ha(BindingUpdate(seq, 50, ack=True, home=True, options=(ReplayProtection(ts),)), sa.spi, sa.key, A(coa), A(HOME))
    return build_packet(A(coa), A(HA), IPPROTO_MH, mh, home_address=A(HOME))


def test_home_registration_then_tunnelling_and_reverse_tunnelled_hoti(lab):
    agent, mn_ns, ha_ns, sa = lab
    (p,) = exchange(mn_ns, home_bu(sa, 1, 1000))
    ba = decode(p.payload)
    assert ba.status == BAStatus.ACCEPTED and mn_ha_valid(ba, sa.key, A(COA), A(HOME))
    assert p.dst == A(COA) and p.rh2_address == A(HOME)
    assert agent.ctl("bindings")["bindings"][0]["careof"] == COA

    # The TUN route for the home address is in place once the binding is.
    def routed():
        out = sh("ip", "-n", ha_ns, "-6", "route", "show", f"{HOME}/128").stdout
        return "dev m6t" in out

    wait_for(routed, 5, "the home address route into the TUN device")
    # A packet for the home address (from the CN side) comes back tunnelled to the CoA.
    probe = build_packet(A(CN), A(HOME), IPPROTO_UDP, b"\x1e\x61\x1e\x61\x00\x0c\x00\x00data")
    arrivals = [x for x in exchange(mn_ns, probe, deadline=2.0, want=2) if x.next_header == IPPROTO_IPV6]
    assert arrivals, "nothing came back tunnelled"
    outer = arrivals[0]
    assert outer.src == A(HA) and outer.dst == A(COA)
    inner = parse_packet(outer.payload)
    assert inner.dst == A(HOME) and inner.payload.endswith(b"data")

    # Reverse-tunnelled HoTI from the registered CoA is forwarded to the CN ...
    hoti = build_packet(A(HOME), A(CN), IPPROTO_MH, encode(HomeTestInit(b"c" * 8)))
    got = exchange(mn_ns, build_packet(A(COA), A(HA), IPPROTO_IPV6, hoti), deadline=2.0, want=1)
    assert [(x.src, x.dst, x.payload[2]) for x in got] == [(A(HOME), A(CN), MHType.HOTI)]
    # ... and from another source it is not.
    got = exchange(mn_ns, build_packet(A(COA_OTHER), A(HA), IPPROTO_IPV6, hoti), deadline=0.5, want=1)
    assert got == []
    drops = [e["reason"] for e in agent.events() if e["event"] == "drop"]
    assert any("outer source" in r for r in drops)


def test_home_registration_failures_answered_per_rfc4285(lab):
    agent, mn_ns, ha_ns, sa = lab
    forged = generate_mn_ha(HOME, HA)
    (p,) = exchange(mn_ns, home_bu(forged, 1, 1000))
    assert decode(p.payload).status == BAStatus.MIPV6_AUTH_FAIL
    assert decode(exchange(mn_ns, home_bu(sa, 5, 2000))[0].payload).status == BAStatus.ACCEPTED
    assert decode(exchange(mn_ns, home_bu(sa, 6, 2000))[0].payload).status == BAStatus.MIPV6_ID_MISMATCH
    assert decode(exchange(mn_ns, home_bu(sa, 4, 3000))[0].payload).status == BAStatus.SEQUENCE_OUT_OF_WINDOW
    # De-registration removes the route into the TUN device.
    mh = seal_mn_ha(BindingUpdate(7, 0, ack=True, home=True, options=(ReplayProtection(4000),)), sa.spi, sa.key, A(COA), A(HOME))
    assert decode(exchange(mn_ns, build_packet(A(COA), A(HA), IPPROTO_MH, mh, home_address=A(HOME)))[0].payload).status == 0
    wait_for(lambda: sh("ip", "-n", ha_ns, "-6", "route", "show", f"{HOME}/128").stdout.strip() == "", 5, "route removal")
    assert agent.stop(signal.SIGTERM) == 0
    assert "m6t" not in sh("ip", "-n", ha_ns, "link").stdout
