"""The lab's pure parts: parameters, topologies, addressing plan, radvd config, parsers.
No root needed."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from testbed.cli import main
from testbed.errors import ConfigError
from testbed.lab.addressing import build_plan, eui64_address
from testbed.lab.daemons import Radvd, RaInterface
from testbed.lab.naming import bridge_name, run_id_of_ifname, tag_of
from testbed.lab.params import parse_assignments, parse_delay_ms
from testbed.lab.selftest import LinkDelay, PingStats, clean_samples, merge_ping_stats, parse_ping
from testbed.lab.pauses import Pause, PauseMonitor
from testbed.agent.ra import parse_ra_message
from testbed.lab.watch import usable
from topologies import TOPOLOGIES, CorporateTopo, HandoverTopo


@pytest.mark.parametrize("text, ms", [("20ms", 20.0), ("20", 20.0), ("500us", 0.5),
                                      ("0.02s", 20.0), (" 1.5 ms ", 1.5), (7, 7.0)])
def test_delay_values(text, ms):
    assert parse_delay_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["fast", "-1ms", "10 m", "", "1e9", "nan", True])
def test_bad_delay_values(text):
    with pytest.raises(ValueError):
        parse_delay_ms(text)


def test_topology_params_typed_and_defaulted():
    topo = HandoverTopo(core_ha_delay="50ms", ra_min_interval="30ms")
    assert topo.params["core_ha_delay"] == 50.0
    assert topo.params["ra_min_interval"] == pytest.approx(0.03)
    assert topo.params["access_delay"] == 1.0 and topo.params["ar_core_delay"] == 2.0
    assert topo.params["core_cn_delay"] == 5.0 and topo.params["core_ha_delay"] == 50.0


@pytest.mark.parametrize("params, message", [
    ({"core_ha_dely": "5ms"}, "unknown parameter 'core_ha_dely'"),
    ({"core_ha_delay": "soon"}, "core_ha_delay='soon' is not a one-way delay"),
    ({"n_mns": "0"}, "below the minimum"),
    ({"n_mns": "2.5"}, "is not an integer"),
    ({"attacker_at": "moon"}, "is not one of core, ar1, ar2, home"),
    ({"ra_min_interval": "0.2", "ra_max_interval": "0.1"}, "is above ra_max_interval"),
])
def test_bad_params_are_one_line_config_errors(params, message):
    with pytest.raises(ConfigError) as info:
        CorporateTopo(**params)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_handover_addressing_plan():
    plan = build_plan(HandoverTopo())
    assert plan.home_prefix == "2001:db8:1::/64"
    assert plan.home_agent == "2001:db8:1::1" and plan.home_agent_node == "ha"
    assert plan.home_address("mn") == "2001:db8:1::100"
    assert plan.cn_address == "2001:db8:e:1::2"
    assert plan.attackers == {"att": "2001:db8:bad::2"}
    assert plan.ar_prefixes == {"ar1": "2001:db8:a:1::/64", "ar2": "2001:db8:a:2::/64"}
    assert plan.mobiles["mn"].intf == "mn-eth0" and plan.mobiles["mn"].first_segment == "a1"
    assert plan.segment("ar2").name == "a2" and plan.segment("home").name == "hm"
    # one /64 per link, all inside 2001:db8::/32
    subnets = [link.subnet for link in plan.links if link.b.node not in plan.segments
               or link.a.node not in plan.mobiles]
    assert len(set(subnets)) == len(subnets)
    doc = ipaddress.IPv6Network("2001:db8::/32")
    assert all(ipaddress.IPv6Network(s).subnet_of(doc) for s in subnets)
    # delays as declared
    delays = {f"{link.a.node}-{link.b.node}": link.delay_ms for link in plan.links}
    assert delays["core-ha"] == 20.0 and delays["core-cn"] == 5.0
    assert delays["ar1-a1"] == 1.0 and delays["core-ar2"] == 2.0 and delays["mn-a1"] == 0.0
    # routes: the core reaches the home link via the HA, the CN has a default route
    core_routes = dict(plan.nodes["core"].routes)
    assert core_routes["2001:db8:1::/64"] == "2001:db8:c::2"
    assert core_routes["2001:db8:a:2::/64"] == "2001:db8:c:2::2"
    assert dict(plan.nodes["ar1"].routes)["2001:db8:1::/64"] == "2001:db8:c:1::1"
    assert plan.nodes["cn"].default_via == "2001:db8:e:1::1"
    assert plan.nodes["mn"].routes == [] and plan.nodes["mn"].default_via is None
    # the MN's CoA is predictable (fixed MAC, EUI-64)
    assert plan.expected_coa("mn", "2001:db8:a:2::/64") == "2001:db8:a:2:0:ff:fe00:100"


def test_corporate_plan_scales_and_places_mobiles_alternately():
    plan = build_plan(CorporateTopo(n_mns=4, n_cns=2, attacker_at="ar2"))
    assert list(plan.mobiles) == ["mn1", "mn2", "mn3", "mn4"]
    assert [m.first_segment for m in plan.mobiles.values()] == ["a1", "a2", "a1", "a2"]
    assert plan.home_address("mn4") == "2001:db8:1::104"
    assert plan.correspondents == {"cn1": "2001:db8:e:1::2", "cn2": "2001:db8:e:2::2"}
    assert plan.attackers == {"att": "2001:db8:a:2::bad"}
    assert plan.nodes["att"].default_via == "2001:db8:a:2::1"
    macs = [i.mac for n in plan.nodes.values() for i in n.interfaces.values()]
    assert len(set(macs)) == len(macs)


def test_corporate_places_every_mobile_on_one_segment_for_the_storm():
    plan = build_plan(CorporateTopo(n_mns=100, placement="ar1"))
    assert {m.first_segment for m in plan.mobiles.values()} == {"a1"}
    assert plan.home_address("mn100") == "2001:db8:1::164"
    coas = {plan.expected_coa(mn, "2001:db8:a:2::/64") for mn in plan.mobiles}
    assert len(coas) == 100  # one care-of address per MN on the segment they all move to


def test_default_corporate_has_ten_mobiles():
    assert len(build_plan(TOPOLOGIES["corporate"]()).mobiles) == 10


def test_eui64():
    assert eui64_address("2001:db8:a:1::/64", "52:54:00:12:34:56") == "2001:db8:a:1:5054:ff:fe12:3456"


def test_names_fit_and_are_recognised():
    assert tag_of("c0de") == "m6c0de"
    name = bridge_name("c0de", "a1")
    assert name == "m6c0dea1" and len(name + "-eth99") <= 15
    assert run_id_of_ifname("m6c0dea1-eth12") == "c0de"
    assert run_id_of_ifname("m6c0dehm") == "c0de"
    for other in ("eth0", "m6c0d", "xm6c0dea1", "m6c0dea1-eth", "m6C0DEa1", "docker0"):
        assert run_id_of_ifname(other) is None
    with pytest.raises(ValueError):
        bridge_name("c0de", "toolong")


def test_radvd_config_has_mobile_ipv6_settings(tmp_path):
    radvd = Radvd("ha", tmp_path, tmp_path, tmp_path, min_interval=0.05, max_interval=0.1,
                  min_delay=0.03, interfaces=[RaInterface("ha-eth0", "2001:db8:1::/64", home=True)])
    text = radvd.render()
    for line in ("interface ha-eth0 {", "MinRtrAdvInterval 0.05;", "MaxRtrAdvInterval 0.1;",
                 "MinDelayBetweenRAs 0.03;", "AdvIntervalOpt on;", "AdvHomeAgentFlag on;",
                 "AdvHomeAgentInfo on;", "prefix 2001:db8:1::/64 {", "AdvRouterAddr on;"):
        assert line in text
    ar = Radvd("ar1", tmp_path, tmp_path, tmp_path,
               interfaces=[RaInterface("ar1-eth0", "2001:db8:a:1::/64")]).render()
    assert "AdvHomeAgentFlag" not in ar and "MaxRtrAdvInterval 0.1;" in ar
    argv = radvd.start_argv()
    assert "-n" in argv and str(radvd.pid_path) in argv and str(radvd.config_path) in argv


def _router_advert(flags: int, lifetime: int, prefixes: list[str]) -> bytes:
    body = bytes([134, 0, 0, 0, 64, flags]) + struct.pack("!HII", lifetime, 0, 0)
    for prefix in prefixes:
        net = ipaddress.IPv6Network(prefix)
        body += bytes([3, 4, net.prefixlen, 0xC0]) + struct.pack("!III", 86400, 14400, 0)
        body += net.network_address.packed
    body += bytes([7, 1, 0, 0]) + struct.pack("!I", 100)  # advertisement interval option
    return body


def _parsed(body: bytes):
    ra = parse_ra_message(body, "fe80::1")
    return None if ra is None else (tuple(str(p) for p in ra.prefixes), ra.home_agent, ra.router_lifetime)


def test_parse_router_advert():
    prefixes, home_agent, lifetime = _parsed(_router_advert(0x20, 1, ["2001:db8:1::/64"]))
    assert prefixes == ("2001:db8:1::/64",) and home_agent and lifetime == 1
    prefixes, home_agent, _ = _parsed(_router_advert(0, 3, ["2001:db8:a:2::/64"]))
    assert prefixes == ("2001:db8:a:2::/64",) and not home_agent
    assert _parsed(b"\x87" + bytes(20)) is None  # a Neighbor Solicitation
    assert _parsed(_router_advert(0, 1, [])[:-3]) == ((), False, 1)  # truncated


def test_address_usability_flags():
    assert usable(0x80)  # permanent
    assert usable(0x40 | 0x04)  # tentative but optimistic
    assert not usable(0x40)  # tentative
    assert not usable(0x08 | 0x04)  # dad failed


PING_OUTPUT = """PING 2001:db8:c:1::2 (2001:db8:c:1::2) 56 data bytes
64 bytes from 2001:db8:c:1::2: icmp_seq=1 ttl=64 time=20.3 ms
64 bytes from 2001:db8:c:1::2: icmp_seq=2 ttl=64 time=20.1 ms
64 bytes from 2001:db8:c:1::2: icmp_seq=3 ttl=64 time=20.2 ms

--- 2001:db8:c:1::2 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 40ms
rtt min/avg/max/mdev = 20.104/20.201/20.312/0.085 ms
"""


def test_delay_verdict_when_the_host_paused_the_machine():
    """Judged on the round trips no pause overlapped: a wrong median still fails, a large
    mdev or too few clean samples is inconclusive."""
    samples = [20.05] * 30 + [350.0] * 10
    stats = PingStats(40, 40, samples, 20.05, 0, 350.0, 100.0)
    on_target = LinkDelay("x", "a", "b", 20.0, stats, clean_ms=[20.05] * 30, quiet=False)
    assert on_target.ok and not on_target.inconclusive
    # a quiet machine too is judged on the round trips no late wake-up overlapped
    assert LinkDelay("x", "a", "b", 20.0, stats, clean_ms=[20.05] * 30, quiet=True).ok
    jitter = LinkDelay("x", "a", "b", 20.0, stats, clean_ms=[20.0] * 25 + [21.5] * 5, quiet=True)
    assert not jitter.ok and not jitter.inconclusive  # ...and an mdev over the goal there fails
    # other programs kept the CPUs busy: a missed goal cannot be held against the delay line
    busy = LinkDelay("x", "a", "b", 20.0, stats, clean_ms=[20.0] * 25 + [21.5] * 5, quiet=True, cpu_pressure=0.6)
    assert not busy.ok and busy.inconclusive and busy.to_dict()["contended"]
    lossy_busy = LinkDelay("x", "a", "b", 20.0, PingStats(40, 39, samples[:39], 20.0, 0, 350.0, 100.0),
                           clean_ms=[20.0] * 30, quiet=True, cpu_pressure=0.6)
    assert not lossy_busy.inconclusive  # a loss is never excused
    slow = LinkDelay("x", "a", "b", 20.0, stats, clean_ms=[22.0] * 30, quiet=False)
    assert not slow.ok and not slow.inconclusive  # a delay line 10 % slow fails, pauses or not
    noisy = LinkDelay("x", "a", "b", 20.0, stats, clean_ms=[20.0] * 25 + [25.0] * 5, quiet=False)
    assert not noisy.ok and noisy.inconclusive
    few = LinkDelay("x", "a", "b", 20.0, stats, clean_ms=[20.0] * 5, quiet=False)
    assert not few.ok and few.inconclusive
    lossy = LinkDelay("x", "a", "b", 20.0, PingStats(40, 39, samples[:39], 20.0, 0, 350.0, 100.0),
                      clean_ms=[20.0] * 30, quiet=False)
    assert not lossy.ok and not lossy.inconclusive


def test_clean_samples_leave_out_round_trips_a_pause_overlapped_or_just_preceded():
    ms = 1_000_000
    m = PauseMonitor.replay([Pause(0, 0, 0, 1000 * ms, 1300 * ms)])  # paused 1000-1300 ms (wall clock)
    # replies stamped at these times after round trips of 2 ms
    stamps = [900 * ms, 1001 * ms, 1310 * ms, 1330 * ms, 2000 * ms]
    stats = PingStats(5, 5, [2.0, 2.0, 2.0, 2.0, 2.0], 2.0, 2.0, 2.0, 0.0, stamps)
    # overlapped: 1001; sent within 20 ms of the pause's end: 1310; clean: 900, 1330, 2000
    assert clean_samples(stats, m) == [2.0, 2.0, 2.0]
    assert clean_samples(PingStats(1, 1, [2.0], 2.0, 2.0, 2.0, 0.0), m) == []  # no stamps, a pause: none
    assert clean_samples(PingStats(1, 1, [2.0], 2.0, 2.0, 2.0, 0.0), PauseMonitor.replay([])) == [2.0]


def test_ping_rounds_merge_into_one_figure():
    a = PingStats(2, 2, [2.0, 4.0], 2.0, 3.0, 4.0, 1.0, [1, 2])
    b = PingStats(3, 2, [6.0, 8.0], 6.0, 7.0, 8.0, 1.0, [3, 4])
    merged = merge_ping_stats([a, b])
    assert (merged.sent, merged.received, merged.samples_ms, merged.stamps_ns) == (5, 4, [2.0, 4.0, 6.0, 8.0], [1, 2, 3, 4])
    assert (merged.min_ms, merged.avg_ms, merged.max_ms) == (2.0, 5.0, 8.0)
    assert merged.mdev_ms == pytest.approx(5 ** 0.5)


def test_parse_ping_and_delay_goal():
    stats = parse_ping(PING_OUTPUT)
    assert (stats.sent, stats.received) == (3, 3)
    assert stats.median_ms == pytest.approx(20.2) and stats.mdev_ms == pytest.approx(0.085)
    assert LinkDelay("x", "a", "b", 20.0, stats).ok  # within 0.3 + 2% of 20
    assert not LinkDelay("x", "a", "b", 19.0, stats).ok  # 1.2 ms off, tolerance 0.68
    jittery = PingStats(3, 3, [19.5, 20.5, 20.0], 19.5, 20.0, 20.5, 0.41)
    assert not LinkDelay("x", "a", "b", 20.0, jittery).ok  # mdev above 0.3
    lossy = PingStats(3, 2, [20.0, 20.2], 20.0, 20.1, 20.2, 0.1)
    assert not LinkDelay("x", "a", "b", 20.0, lossy).ok


def test_assignments():
    assert parse_assignments(["a=1", "b = 2ms"]) == {"a": "1", "b": "2ms"}
    for bad in (["a"], ["=1"], ["a="], ["a=1", "a=2"]):
        with pytest.raises(ConfigError):
            parse_assignments(bad)


@pytest.mark.parametrize("argv, message", [
    (["lab", "--param", "core_ha_dely=50ms"], "unknown parameter 'core_ha_dely'"),
    (["lab", "--param", "core_ha_delay=50 parsecs"], "core_ha_delay='50 parsecs'"),
    (["lab", "--param", "nonsense"], "expected NAME=VALUE"),
    (["lab", "--topo", "mesh"], "--topo 'mesh': unknown topology"),
    (["lab", "--topo", "corporate", "--param", "n_mns=many"], "n_mns='many'"),
    (["lab", "--param", "delay_backend=carrier-pigeon"], "delay_backend='carrier-pigeon'"),
])
def test_cli_rejects_bad_params_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("testbed: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_lists_params(capsys):
    assert main(["lab", "--topo", "corporate", "--list-params"]) == 0
    out = capsys.readouterr().out
    assert "n_mns" in out and "core_ha_delay" in out and "delay_backend" in out


def test_namespace_scan_never_matches_the_root_namespace():
    """It feeds kill decisions: the root namespace must never be taken for a node's."""
    import os

    from testbed.lab.cleanup import netns_inode, processes_in_netns

    own = netns_inode(os.getpid())
    assert own is not None
    assert processes_in_netns({own}) == []
    assert processes_in_netns({own, netns_inode(1) or own}) == []
