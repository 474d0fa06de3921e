"""The load tool's emulated mobile nodes and driver, against the CN engine in-process: every
mobile bound at its last care-of address, closed and open loop, retransmissions with new
sequence numbers after losses, return-routability exchanges, authentic BAs."""

from __future__ import annotations

import ipaddress

import pytest

from testbed.lab.enginecost import EngineTransport, durable_write_cost, key_loading_cost, replay_cost
from testbed.lab.fleet import HOME_BASE, Fleet, careof, home_address, is_return_routability
from testbed.lab.loadcheck import engine_figures, percentile, phase_figures
from testbed.lab.loaddriver import LoadDriver
from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.constants import IPPROTO_MH, BAStatus
from testbed.mip6.keys import generate
from testbed.storage.keyfiles import write_new
from testbed.mip6.messages import BindingAck, BindingError, encode
from testbed.mip6.packet import build_packet

CN = ipaddress.IPv6Address("2001:db8:e:1::2")


def setup(count: int, rr_share: float):
    peers = {i: generate(HOME_BASE + i, CN) for i in range(count) if not is_return_routability(i, rr_share)}
    engine = CorrespondentNode(CN.packed, peers=list(peers.values()))
    return Fleet.build(CN.packed, count, peers), engine


def assert_bound_at_last_round(fleet, engine, result, last_round):
    assert not result.failed, [(j.mobile.index, j.failure) for j in result.failed]
    assert len(engine.bindings) == len(fleet.mobiles)
    for m in fleet.mobiles:
        b = engine.binding_for(m.home)
        assert b.careof == careof(m.index, last_round) and b.seq == m.last_seq
        assert b.mechanism == m.mechanism
    for job in result.jobs:  # R7: every BA carries an authenticator made with the mobile's Kbm
        assert fleet.check_ba(job.ba_packet, job.kbm, job.coa) is not None


def test_addresses_and_the_share_of_return_routability_mobiles():
    assert home_address(0) == ipaddress.IPv6Address("2001:db8:1::1:0:0").packed
    assert careof(4, 3) == ipaddress.IPv6Address("2001:db8:a:3::5").packed
    assert sum(is_return_routability(i, 0.1) for i in range(1000)) == 100
    assert not any(is_return_routability(i, 0.0) for i in range(100))
    assert all(is_return_routability(i, 1.0) for i in range(100))


def test_closed_loop_binds_and_moves_every_mobile_with_both_mechanisms():
    fleet, engine = setup(40, 0.25)
    transport = EngineTransport(engine)
    driver = LoadDriver(fleet, transport)
    jobs = driver.jobs(range(0, 4))
    driver.prepare(jobs)
    result = driver.run(jobs, window=8)
    assert_bound_at_last_round(fleet, engine, result, 3)
    assert sum(j.retransmissions for j in jobs) == 0 and result.unmatched == 0
    # the return-routability mobiles fetched their home token once and reused it (RFC 6275 5.2.7)
    assert len(transport.times_ns["HoTI"]) == 10 and len(transport.times_ns["CoTI"]) == 40
    assert len(transport.times_ns["BU"]) == 120 and len(transport.times_ns["BU rr"]) == 40
    figures = engine_figures(transport.times_ns, len(jobs))
    assert 0 < figures["precomputed_bu_median_us"] < figures["rr_binding_us"]
    assert figures["precomputed_bu_median_us"] <= figures["per_binding_us"] <= figures["rr_binding_us"]
    assert figures["bound_per_s"] == pytest.approx(1e6 / figures["per_binding_us"], rel=1e-3)


def test_open_loop_paces_the_jobs_at_the_rate():
    fleet, engine = setup(50, 0.1)
    driver = LoadDriver(fleet, EngineTransport(engine))
    jobs = driver.jobs(range(0, 2))
    driver.prepare(jobs)
    result = driver.run(jobs, rate=1000.0)
    assert_bound_at_last_round(fleet, engine, result, 1)
    # 100 jobs at 1,000/s: the n-th never starts before n ms after the phase began (a loaded
    # machine can only make them later, and the first one late too: the span is not the test)
    starts = sorted(j.started_ns for j in jobs)
    assert all(t - result.started_ns >= n * 1_000_000 for n, t in enumerate(starts))
    figures = phase_figures(result, cpu_s=0.05)
    assert figures["accepted"] == 100 and figures["failed"] == 0 and figures["offered_per_s"] == 1000.0
    assert figures["bus_sent"] == 100 and figures["cn_cpu_per_bu_us"] == pytest.approx(500.0)
    assert figures["ba_median_ms"] <= figures["ba_p99_ms"]


class Lossy(EngineTransport):
    """Loses every third packet sent to the engine (BUs, HoTIs and CoTIs alike)."""

    def __init__(self, engine):
        super().__init__(engine)
        self.count = 0

    def send(self, packet, what):
        self.count += 1
        if self.count % 3 == 0:
            return 0
        return super().send(packet, what)


def test_lost_packets_are_sent_again_with_new_sequence_numbers_and_every_mobile_ends_bound():
    fleet, engine = setup(30, 0.2)
    driver = LoadDriver(fleet, Lossy(engine), ba_timeout_s=0.01, max_retransmissions=8)
    jobs = driver.jobs(range(0, 3))
    driver.prepare(jobs)
    result = driver.run(jobs, window=5)
    assert_bound_at_last_round(fleet, engine, result, 2)
    assert sum(j.retransmissions for j in jobs) > 10
    assert any(len(j.sent) > 1 for j in jobs)  # a retransmitted BU got a new sequence number


def test_a_job_with_no_answer_fails_after_its_retransmissions():
    fleet, engine = setup(3, 0.0)

    class Silent(EngineTransport):
        def send(self, packet, what):
            return 0

    driver = LoadDriver(fleet, Silent(engine), ba_timeout_s=0.001, max_retransmissions=2)
    jobs = driver.jobs(range(0, 1))
    driver.prepare(jobs)
    result = driver.run(jobs, window=3, deadline_s=10)
    assert len(result.failed) == 3 and not result.timed_out
    assert all(j.failure == "no answer to 3 transmissions" and len(j.sent) == 3 for j in jobs)


def test_a_rejected_bu_fails_its_job_with_the_status():
    fleet, engine = setup(2, 0.0)
    driver = LoadDriver(fleet, EngineTransport(engine))
    first = driver.jobs(range(0, 1))
    driver.prepare(first)
    assert not driver.run(first, window=2).failed
    for m in fleet.mobiles:
        m.last_seq = 0  # as after a restart that lost its numbers: the CN refuses them (R4)
    again = driver.jobs(range(1, 2))
    driver.prepare(again)
    result = driver.run(again, window=2)
    assert [j.failure for j in result.failed] == [f"BA status {BAStatus.SEQUENCE_OUT_OF_WINDOW}"] * 2


def test_classify_reads_bas_and_binding_errors_and_ignores_the_rest():
    home = home_address(7)
    coa = careof(7, 1)
    ba = build_packet(CN.packed, coa, IPPROTO_MH, encode(BindingAck(0, 513, 100)), rh2_address=home)
    reply = Fleet.classify(ba)
    assert (reply.kind, reply.home, reply.seq, reply.status) == ("ba", home, 513, 0)
    be = build_packet(CN.packed, coa, IPPROTO_MH, encode(BindingError(1, home)))
    reply = Fleet.classify(be)
    assert (reply.kind, reply.home, reply.status) == ("be", home, 1)
    for junk in (b"", ba[:60], be[:50], b"\x60" + bytes(60)):
        assert Fleet.classify(junk) is None


def test_percentile_and_cost_helpers(tmp_path):
    assert percentile([], 0.99) is None
    assert percentile(list(range(1, 101)), 0.99) == 99 and percentile([5.0], 0.5) == 5.0
    cost = durable_write_cost(tmp_path, updates=5, new_peers=3)
    assert cost["update_median_us"] > 0 and cost["new_peer_median_us"] > 0
    assert list(tmp_path.iterdir()) == []  # the store it measured is gone
    paths = [write_new(tmp_path / f"k{i}.yaml", generate(HOME_BASE + i, CN)).source for i in range(3)]
    figures, loaded = key_loading_cost(paths, CN.packed)
    assert figures["files"] == 3 and len(loaded) == 3 and figures["read_and_check_s"] >= 0


class Slow(EngineTransport):
    """Answers 20 ms late, like a correspondent with a queue."""

    def receive(self, timeout_s):
        import time as _time

        now = _time.monotonic_ns()
        due = [(p, t) for p, t in self._out if now - t >= 20_000_000]
        self._out = [(p, t) for p, t in self._out if now - t < 20_000_000]
        if not due and timeout_s:
            _time.sleep(min(timeout_s, 0.002))
        return due


def test_a_mobile_that_moves_again_before_its_ba_supersedes_its_last_bu():
    fleet, engine = setup(10, 0.2)
    driver = LoadDriver(fleet, Slow(engine))
    jobs = driver.jobs(range(0, 6))
    driver.prepare(jobs)
    result = driver.run(jobs, rate=2000.0)  # each mobile moves every 5 ms, BAs take 20 ms
    assert not result.failed and len(result.superseded) + len(result.accepted) == 60
    assert result.superseded  # some were overtaken by the next move
    for m in fleet.mobiles:  # bound where it went last, by the BU it sent last
        last = [j for j in jobs if j.mobile is m][-1]
        assert last.accepted and engine.binding_for(m.home).careof == careof(m.index, 5)
        assert engine.binding_for(m.home).seq == m.last_seq
    assert sum(j.retransmissions for j in jobs) == 0


def test_the_load_topology_routes_the_cn_through_the_load_node_and_holds_the_fleet_s_addresses():
    from testbed.lab.addressing import build_plan
    from testbed.lab.fleet import MAX_MOBILES, MAX_ROUND
    from topologies.load import CAREOF_BLOCK, HOME_BLOCK, LoadTopo

    plan = build_plan(LoadTopo())
    assert plan.correspondents == {"cn": "2001:db8:e:1::2"} and not plan.mobiles
    assert plan.nodes["cn"].default_via == "2001:db8:e:1::1" in plan.nodes["load"].static_addresses()
    homes, careofs = ipaddress.IPv6Network(HOME_BLOCK), ipaddress.IPv6Network(CAREOF_BLOCK)
    for i in (0, MAX_MOBILES - 1):
        assert ipaddress.IPv6Address(home_address(i)) in homes
        assert ipaddress.IPv6Address(careof(i, 0)) in careofs and ipaddress.IPv6Address(careof(i, MAX_ROUND)) in careofs
    assert ipaddress.IPv6Address(home_address(0)) in ipaddress.IPv6Network(plan.home_prefix)


def test_the_engine_replay_goes_as_the_run_did_and_times_every_call():
    import random

    peers = [generate(HOME_BASE + i, CN) for i in range(20) if not is_return_routability(i, 0.25)]
    by_index = dict(zip([i for i in range(20) if not is_return_routability(i, 0.25)], peers))

    def engine():
        return CorrespondentNode(CN.packed, peers=peers, rng=random.Random(7).randbytes)

    fleet = Fleet.build(CN.packed, 20, by_index)
    transport = EngineTransport(engine())
    driver = LoadDriver(fleet, transport, keep_bas=False)
    jobs = driver.jobs(range(0, 3))
    driver.prepare(jobs)
    assert not driver.run(jobs, window=1).failed
    times, accepted = replay_cost(engine(), transport.sent)
    assert accepted == 60 == len(times["BU"]) + len(times["BU rr"])
    assert {k: len(v) for k, v in times.items()} == {k: len(v) for k, v in transport.times_ns.items()}
    # an engine with another RR key refuses the replayed return-routability BUs
    _, other = replay_cost(CorrespondentNode(CN.packed, peers=peers), transport.sent)
    assert other == len(times["BU"])
