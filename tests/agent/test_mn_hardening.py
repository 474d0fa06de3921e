"""Issue 9 against a running mobile-node agent. Its link peer (tests/agent/link_peer.py) plays
two access routers, the home agent and a precomputed-key correspondent with hand-built
packets: R13 on the MN side (BA 135 far ahead, and across a restart), a departing router,
MAX_UPDATE_RATE under Binding Refresh Requests and an RA flood, and the first home
registration's retransmission timeout."""

from __future__ import annotations

import ipaddress
import signal
import time

import pytest
from agent_proc import AgentProc, wait_for
from link_peer import LinkPeer, windows_over
from netns_pair import netns_pair, sh

from testbed.mip6.constants import BAStatus
from testbed.mip6.keys import generate
from testbed.storage.keyfiles import write_new
from testbed.mip6.mnha import dump_mn_ha, generate_mn_ha
from testbed.storage.secretfiles import write_secret_text

pytestmark = pytest.mark.lab

HOME, HA, CN = "2001:db8:1::100", "2001:db8:1::1", "2001:db8:3::1"
R1, R2 = "fe80::1", "fe80::2"
P1, P2 = "2001:db8:a1::/64", "2001:db8:a2::/64"


def A(text):
    return ipaddress.IPv6Address(text).packed


def in_prefix(address: str | None, prefix: str) -> bool:
    return address is not None and ipaddress.IPv6Address(address) in ipaddress.IPv6Network(prefix)


@pytest.fixture
def link(tmp_path):
    with netns_pair([], [f"{HA}/128", f"{CN}/128", f"{R1}/64", f"{R2}/64"],
                    b_routes=((P1, None), (P2, None))) as (tag, mn_ns, peer_ns):
        mn_if = f"{tag}x"
        for name, value in (("accept_ra", 1), ("autoconf", 1), ("dad_transmits", 0), ("optimistic_dad", 1)):
            sh("ip", "netns", "exec", mn_ns, "sysctl", "-qw", f"net.ipv6.conf.{mn_if}.{name}={value}")
        # the peer's kernel knows no Mobile IPv6: keep its Parameter Problems off the MN's link
        sh("ip", "netns", "exec", peer_ns, "ip6tables-legacy", "-w", "-A", "OUTPUT", "-p", "ipv6-icmp",
           "--icmpv6-type", "parameter-problem", "-j", "DROP")
        data = write_new(tmp_path / "pair.yaml", generate(HOME, CN))
        sa = generate_mn_ha(HOME, HA)
        write_secret_text(tmp_path / "mnha.yaml", dump_mn_ha(sa))
        agent = AgentProc(mn_ns, tmp_path, "mn", {
            "role": "mn", "interfaces": [mn_if], "home_address": HOME, "home_agent": HA,
            "home_prefix": "2001:db8:1::/64", "correspondents": [CN],
            "preconfigured": [str(tmp_path / "pair.yaml")], "mn_ha_keys": [str(tmp_path / "mnha.yaml")],
        })
        peer = LinkPeer(peer_ns, f"{tag}y", A(HOME), A(HA), A(CN), sa, data)
        try:
            yield agent, peer
        finally:
            agent.stop(signal.SIGKILL)
            peer.close()


def bound_at(agent, prefix: str, deadline: float = 10.0) -> str:
    """Wait until the MN's home registration and its correspondent are bound at a care-of
    address in ``prefix``; that address."""

    def done():
        entries = agent.ctl("bul")["entries"]
        ok = all(e["state"] == "bound" and in_prefix(e["careof"], prefix) for e in entries)
        return entries[0]["careof"] if ok else None

    return wait_for(done, deadline, f"the MN bound at {prefix}")


def cn_entry(agent) -> dict:
    return next(e for e in agent.ctl("bul")["entries"] if e["peer"] == CN)


def test_departing_router_does_not_pull_the_mn_back(link):
    """RFC 4861 6.3.4: router lifetime 0 is not a default router; RFC 4862 5.5.4: a deprecated
    prefix is not used for new communication. Either way, no move back to the old router."""
    agent, peer = link
    agent.start()
    peer.ra(R1, P1)
    bound_at(agent, P1)
    peer.ra(R2, P2)
    coa2 = bound_at(agent, P2)
    moves = len([e for e in agent.events() if e["event"] == "movement"])
    t = time.monotonic()
    peer.ra(R1, P1, lifetime=0, preferred=0)  # the old router says goodbye, its prefix deprecated
    agent.wait_event("ra_ignored", router=R1, reason="router lifetime 0: not a default router (RFC 4861 6.3.4)")
    peer.ra(R1, P1, preferred=0)  # a default router again, but only a deprecated prefix
    agent.wait_event("ra_ignored", router=R1, reason="only deprecated prefixes (RFC 4862 5.5.4)")
    assert len([e for e in agent.events() if e["event"] == "movement"]) == moves
    assert agent.ctl("status")["careof"] == coa2
    assert not [s for s in peer.bus(A(HA), since=t) + peer.bus(A(CN), since=t) if in_prefix(str(ipaddress.IPv6Address(s.packet.src)), P1)]


def test_ba_135_far_ahead_never_takes_the_mn_past_the_bound_even_after_a_restart_R13(link):
    """The issue's MN attack: BAs 135 with numbers far ahead made it jump past a 2^15
    advance, then past 2^16, and keep binding with the same key."""
    agent, peer = link
    answers = iter([(BAStatus.SEQUENCE_OUT_OF_WINDOW, 20000)])
    peer.cn_policy = lambda bu: next(answers, (BAStatus.ACCEPTED, bu.seq))
    agent.start()
    peer.ra(R1, P1)
    bound_at(agent, P1)
    assert [s.msg.seq for s in peer.bus(A(CN))] == [1, 20001]
    peer.cn_policy = lambda bu: (BAStatus.SEQUENCE_OUT_OF_WINDOW, 40000)
    peer.ra(R2, P2)
    agent.wait_event("rekey_required")
    wait_for(lambda: cn_entry(agent)["state"] == "rekey", 5, "the correspondent entry in state rekey")
    assert [s.msg.seq for s in peer.bus(A(CN))] == [1, 20001, 20002]  # never 40001
    # kill -9 and a restart: the MN still does not use the key
    agent.stop(signal.SIGKILL)
    t = time.monotonic()
    n = 0
    agent.start()
    peer.cn_policy = lambda bu: (BAStatus.ACCEPTED, bu.seq)
    peer.ra(R1, P1)
    bound_home = wait_for(lambda: agent.ctl("bul")["entries"][0]["state"] == "bound", 10, "home registration")
    assert bound_home
    agent.wait_event("rekey_required", since=n)
    assert cn_entry(agent)["state"] == "rekey"
    assert peer.bus(A(CN), since=t) == []


def test_binding_refresh_requests_and_an_ra_flood_get_at_most_three_messages_a_second(link):
    """RFC 6275 11.8, MAX_UPDATE_RATE = 3 messages of one type to one node per second: six
    BRRs in 0.1 s gave six BUs within a second; an RA flood gave 4-14 moves and BUs a second."""
    agent, peer = link
    agent.start()
    peer.ra(R1, P1)
    coa = bound_at(agent, P1)
    t = time.monotonic()
    for _ in range(6):
        peer.brr(A(coa))
        time.sleep(0.017)
    # Three BUs at once; the BRRs over the limit are answered by one BU when the limit allows.
    deferred = agent.wait_event("send_deferred", peer=CN, what="BU")
    wait_for(lambda: [s for s in peer.bus(A(CN), since=t) if s.t * 1e9 >= deferred["until_t_ns"]], 5,
             "the held-back BU")
    assert windows_over(bus_sent(agent, CN), 3, window=0.999) == []  # the move's BU counts too
    assert len(peer.bus(A(CN), since=t)) < 6
    # An RA flood from two routers, alternating: at most 3 moves and 3 BUs per peer a second.
    t = time.monotonic()
    n = len(agent.events())
    for i in range(60):
        peer.ra(R1 if i % 2 else R2, P1 if i % 2 else P2)
        time.sleep(0.02)
    last = P1
    bound_at(agent, last, deadline=15)
    moves = [e["t_ns"] / 1e9 for e in agent.events()[n:] if e["event"] == "movement"]
    assert moves and windows_over(moves, 3) == [], moves
    for to in (HA, CN):
        assert peer.bus(A(to), since=t), to
        times = bus_sent(agent, to, since_ns=int(t * 1e9))
        assert times and windows_over(times, 3, window=0.999) == [], (to, times)


def bus_sent(agent, peer: str, since_ns: int = 0) -> list[float]:
    """When the MN sent BUs to ``peer`` (s), first sends and retransmissions, by its own clock: the
    clock its rate limit keeps (arrival times at the peer bunch up when the machine is loaded)."""
    return [e["t_ns"] / 1e9 for e in agent.events() if e["t_ns"] >= since_ns and e.get("peer") == peer
            and (e["event"] == "bu_sent" or (e["event"] == "retransmit" and e.get("what") == "BU"))]


def test_first_home_registration_is_retransmitted_after_1_5_s(link):
    """RFC 6275 11.8: InitialBindackTimeoutFirstReg (1.5 s) for the first home registration
    (it was 1 s); the timeout then doubles (the retransmit event names the next one: 3 s)."""
    agent, peer = link
    answered = []
    peer.home_policy = lambda bu: (BAStatus.ACCEPTED, bu.seq) if answered or answered.append(bu) else None
    agent.start()
    peer.ra(R1, P1)
    bound_at(agent, P1)
    first, second = peer.bus(A(HA))[:2]
    assert second.t - first.t >= 1.45, second.t - first.t  # timers never fire early; late is the host's
    retransmit = agent.wait_event("retransmit", peer=HA, what="BU")
    assert retransmit["timeout_ms"] == 3000
