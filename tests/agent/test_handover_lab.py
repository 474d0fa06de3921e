"""Issue 4's acceptance in the real ``handover`` lab: MN, CN and HA agents in Mininet nodes,
real radvd, real delay lines, real captures; 10 moves per mechanism."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from testbed.agent.events import MovementEvent, PacketSent, ProbeReceived
from testbed.agent.sched import kernel_takes_short_slice
from testbed.diag.capture import read_frames
from testbed.diag.verify import KeyRing, verify_frames
from testbed.lab.agents import LabAgents
from testbed.lab.handover_check import bu_turnaround_ns, bu_turnarounds, run_mechanism
from testbed.lab.lab import Lab
from testbed.mip6.constants import IPPROTO_MH, IPPROTO_UDP, MHType
from testbed.mip6.errors import CodecError
from testbed.mip6.events import (
    BaReceived,
    BaSent,
    BindingCreated,
    BindingDeleted,
    BindingUpdated,
    BuReceived,
    BuRejected,
    BuSent,
    Drop,
    HotiForwarded,
)
from testbed.storage.keyfiles import write_new
from testbed.mip6.messages import BindingUpdate, decode
from testbed.mip6.options import NonceIndices
from testbed.mip6.packet import parse_packet

pytestmark = pytest.mark.lab

MOVES = 10


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("handover")
    return {m: run_mechanism(m, moves=MOVES, run_dir=root / m) for m in ("rr", "precomputed")}


def _ipv6(frame):
    try:
        return parse_packet(frame.ipv6)
    except CodecError:
        return None


def _packets(pcap: str):
    """(frame number, parsed IPv6 packet) for every well-formed IPv6 frame of a capture."""
    for frame in read_frames(pcap):
        packet = _ipv6(frame)
        if packet is not None:
            yield frame.number, packet


def _mh(packet):
    if packet.next_header == 41:
        packet = parse_packet(packet.payload)
    return packet if packet.next_header == IPPROTO_MH else None


def test_both_mechanisms_bind_and_survive_ten_moves(runs):
    for result in runs.values():
        assert result.ok, result.summary()
        assert len(result.moves) == MOVES
        assert all(m.cn_binding_ok for m in result.moves)


def test_return_routability_hoti_through_the_ha_coti_direct_then_route_optimised_probes(runs):
    r = runs["rr"]
    records = list(verify_frames(read_frames(r.pcaps["mn"]), KeyRing()))
    hoti = [x for x in records if x.mh_type == "HoTI"]
    coti = [x for x in records if x.mh_type == "CoTI"]
    assert hoti and all(x.tunnelled and x.tunnel_dst == "2001:db8:1::1" for x in hoti)
    assert coti and not any(x.tunnelled for x in coti)
    assert any(isinstance(e, HotiForwarded) for e in r.events["ha"])
    # Probes with a type 2 routing header (route-optimised) on the MN's link.
    ro = [p for _, p in _packets(r.pcaps["mn"]) if p.next_header == IPPROTO_UDP and p.rh2_address is not None]
    assert ro, "no route-optimised probe captured"


def test_precomputed_sends_no_rr_messages_and_authenticates_bu_and_ba(runs, tmp_path):
    r = runs["precomputed"]
    assert set(r.mh_types) == {"BU", "BA"}
    cn = "2001:db8:e:1::2"
    for pcap in r.pcaps.values():
        for _, p in _packets(pcap):
            mh = _mh(p)
            if mh is None:
                continue
            assert mh.payload[2] not in (MHType.HOTI, MHType.HOT, MHType.COTI, MHType.COT)
            msg = decode(mh.payload)
            if type(msg) is BindingUpdate and str(ipaddress.IPv6Address(mh.dst)) == cn:
                assert not any(type(o) is NonceIndices for o in msg.options)
    # testbed verify-pcap, with the pair's preconfigured data, finds every CN BU and BA valid.
    keys = [write_new(tmp_path / f"k{i}.yaml", d).source for i, d in enumerate(r.preconfigured)]
    argv = [sys.executable, "-m", "testbed.cli", "verify-pcap", r.pcaps["cn"], "--json"]
    for k in keys:
        argv += ["--keys", k]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    cn_rows = [x for x in rows if x["mh_type"] in ("BU", "BA") and cn in (x["src"], x["dst"])]
    assert cn_rows and {x["auth"] for x in cn_rows} == {"valid"}
    assert any(x["mh_type"] == "BA" for x in cn_rows)


def test_home_registrations_carry_valid_mn_ha_authentication(runs):
    """RFC 4285 on the wire: every BU to and BA from the HA on the MN's link verifies with the
    run's MN-HA key, for both mechanisms."""
    ha = "2001:db8:1::1"
    for mechanism, r in runs.items():
        records = list(verify_frames(read_frames(r.pcaps["mn"]), KeyRing(mn_ha=r.mn_ha)))
        home = [x for x in records if x.mh_type in ("BU", "BA") and ha in (x.src, x.dst)]
        assert {x.mh_type for x in home} == {"BU", "BA"}, mechanism
        assert {(x.auth, x.auth_option) for x in home} == {("valid", "mn-ha")}, (mechanism, home)
        assert r.bad_verdicts.get("BU:valid") and r.bad_verdicts.get("BA:valid")
        assert not any(k.endswith((":invalid", ":malformed")) for k in r.bad_verdicts), r.bad_verdicts


def test_probes_follow_each_move_and_never_reach_an_old_coa_after_a_newer_bu(runs):
    for mechanism, r in runs.items():
        probes = [e for e in r.events["mn"] if isinstance(e, ProbeReceived)]
        assert probes, mechanism
        bindings = sorted(
            (e.t_ns, e.careof) for e in r.events["cn"] if isinstance(e, (BindingCreated, BindingUpdated))
        )
        # Every route-optimised probe went to the CoA of the newest binding the CN had accepted.
        for p in probes:
            if p.path != "direct":
                continue
            current = [coa for t, coa in bindings if t <= p.sent_t_ns]
            assert current and current[-1] == p.to, (mechanism, p)
        # After each move, probes arrive directly at the new CoA.
        moves = [e for e in r.events["mn"] if isinstance(e, MovementEvent)][1:]
        assert len(moves) == MOVES
        for m in moves:
            assert any(p.path == "direct" and p.to == m.careof and p.t_ns > m.t_ns for p in probes), m


def test_tshark_dissects_every_mh_packet_and_agrees_with_the_event_log(runs):
    tshark = shutil.which("tshark")
    assert tshark, "tshark is installed by scripts/install"
    for mechanism, r in runs.items():
        # a capture the kernel dropped packets from cannot be held against the event log
        assert r.capture_drops["mn"] == 0, f"{mechanism}: tcpdump reported {r.capture_drops}"
        out = subprocess.run(
            # (not ICMPv6 errors that quote a Mobility Header packet)
            [tshark, "-r", r.pcaps["mn"], "-Y", "mipv6 && !icmpv6", "-T", "fields", "-E", "separator=|",
             "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "mip6.mhtype", "-e", "mip6.bu.seqnr",
             "-e", "mip6.ba.status", "-e", "mip6.ba.seqnr", "-e", "_ws.malformed"],
            capture_output=True, text=True, check=True,
        ).stdout
        rows = [line.split("|") for line in out.splitlines()]
        assert rows and not any(row[6] for row in rows), f"{mechanism}: tshark found malformed packets"
        # BU sequence numbers on the wire = the MN's bu_sent events; BA statuses = ba_received.
        wire_bu = sorted(int(row[3]) for row in rows if row[2] == "5")
        log_bu = sorted(e.seq for e in r.events["mn"] if isinstance(e, BuSent))
        assert wire_bu == log_bu, _mismatch(mechanism, r, wire_bu, log_bu, rows, BuSent)
        wire_ba = sorted((int(row[5]), int(row[4])) for row in rows if row[2] == "6")
        log_ba = sorted((e.seq, e.status) for e in r.events["mn"] if isinstance(e, BaReceived))
        assert wire_ba == log_ba, _mismatch(mechanism, r, wire_ba, log_ba, rows, BaReceived)


def _first_int(field: str) -> int | None:
    try:
        return int(field.split(",")[0])
    except ValueError:
        return None


def _mismatch(mechanism, r, wire, log, rows, event) -> str:
    """What differs between the capture and the event log, with the events and packets involved."""
    only_wire, only_log = Counter(wire) - Counter(log), Counter(log) - Counter(wire)
    keys = {k if isinstance(k, int) else k[0] for k in (only_wire + only_log)}
    events = [e for e in r.events["mn"] if isinstance(e, event) and e.seq in keys]
    packets = [row for row in rows if _first_int(row[3] or row[5]) in keys]
    return (f"{mechanism}: only on the wire {dict(only_wire)}, only in the log {dict(only_log)}; "
            f"events {events}; packets {packets}; capture drops {r.capture_drops}")


def test_event_log_gives_receive_to_send_times_for_bus(runs):
    for mechanism, r in runs.items():
        for node in ("cn", "ha"):
            deltas = bu_turnaround_ns(r.events[node])
            assert len(deltas) >= MOVES and all(d > 0 for d in deltas), (mechanism, node)
            # and when the agent woke to read each BU, between its arrival and the BA leaving
            stages = bu_turnarounds(r.events[node])
            assert all(arrived <= woke <= sent for arrived, woke, sent in stages), (mechanism, node)
            # the BAs carry the kernel's transmit stamp (all but a first one that waited for
            # neighbour discovery), taken after the agent woke and before its send returned
            bas = [e for e in r.events[node] if isinstance(e, PacketSent) and e.what.startswith("BA")]
            stamped = [e for e in bas if e.wire_t_ns is not None]
            assert len(stamped) >= len(bas) - 1, (mechanism, node, len(stamped), len(bas))
            assert all(e.trigger_t_ns <= e.woke_t_ns <= e.wire_t_ns <= e.t_ns for e in stamped), (mechanism, node)


RESERVE = 8

PERSISTENCE = {"strict": "strict", "reserve": {"reserve": RESERVE}}


def _first_bu_to(frames: list, dst: str) -> bytes:
    """The octets of the first BU the MN sent to ``dst`` in a capture."""
    for frame in frames:
        packet = _ipv6(frame)
        if (packet is not None and packet.home_address is not None and packet.next_header == IPPROTO_MH
                and str(ipaddress.IPv6Address(packet.dst)) == dst and packet.payload[2:3] == bytes([MHType.BU])):
            return frame.ipv6
    raise AssertionError(f"no BU to {dst} captured")


def _since(handle, t_ns: int) -> list:
    return [e for e in handle.events() if e.t_ns > t_ns]


def _replay_verdict(lab, agents, node: str, raw: bytes, t_restart: int) -> list:
    """Inject ``raw`` from the attacker; the restarted ``node``'s events once it has judged it."""
    done = lab.run("att", [sys.executable, "-m", "testbed.lab.inject", raw.hex()], tag="replay")
    assert done.returncode == 0, done.stderr

    def verdict():
        events = _since(agents[node], t_restart)
        if any(isinstance(e, BuReceived) for e in events) and any(isinstance(e, (BuRejected, Drop)) for e in events):
            return events
        return None

    return agents.wait(verdict, 5, f"the restarted {node}'s verdict on the replayed BU")


@pytest.mark.parametrize("mode", PERSISTENCE)
def test_kill_9_then_replay_is_refused_by_cn_and_ha_and_the_mn_never_reuses_a_number(tmp_path, mode):
    """Each agent killed with SIGKILL and started again on its state directory, in ``strict``
    and ``reserve: 8`` modes: the CN and the HA refuse a captured BU (BA 135 carrying their
    last number, under a reserve the mark), the MN is bound again after at most one extra
    round trip (a BA 135 first under a reserve), and a restarted MN goes on after every
    number it sent before. Under the reserve the agents also keep warm (``keep_warm_ms``):
    their rehearsals run and change none of this, and nothing of them leaves an agent."""
    keep_warm = 2 if mode == "reserve" else 0
    with Lab("handover", run_dir=tmp_path / "run") as lab:
        plan = lab.addresses
        cn, ha = plan.correspondents["cn"], plan.home_agent
        cap = lab.capture("mn", plan.mobile("mn").intf)
        cn_cap = lab.capture("cn", next(iter(plan.nodes["cn"].interfaces)))
        with LabAgents(lab, "precomputed", persistence=PERSISTENCE[mode], keep_warm_ms=keep_warm) as agents:
            first = agents.wait(lambda: agents.mn_bound("mn"), 15, "the first binding")
            lab.move("mn", "ar2")
            second = agents.wait(lambda: (c := agents.mn_bound("mn")) and c != first and c, 10, "the second binding")
            cap.stop()
            frames = list(read_frames(str(cap.path)))
            replay_cn, replay_ha = _first_bu_to(frames, cn), _first_bu_to(frames, ha)
            marks = {"strict": 2, "reserve": 1 + RESERVE}[mode]  # 2 BUs each so far; a reserve: the first + 8

            # the CN: kill -9, the replay refused, the MN bound again within one extra round trip
            t_restart = time.monotonic_ns()
            agents.restart("cn", kill=True)
            events = _replay_verdict(lab, agents, "cn", replay_cn, t_restart)
            assert [(e.seq, e.last_seq) for e in events if isinstance(e, BuRejected)] == [(1, marks)]
            assert [(e.status, e.seq) for e in events if isinstance(e, BaSent)] in ([(135, marks)], [])
            assert not [e for e in events if isinstance(e, (BindingCreated, BindingUpdated))]
            assert agents.cn_binding("cn") is None
            t_move = lab.move("mn", "ar1")
            agents.wait(lambda: agents.mn_bound("mn") == first and (agents.cn_binding("cn") or {}).get("careof") == first,
                        10, "the binding after the CN's restart")
            # what the CN answered the MN's BUs after the move (read at the CN: its BA 135 to the
            # replayed BU went to the first care-of address, and can reach the MN once it is back
            # there, neighbour discovery for it having been pending meanwhile)
            from_cn = [e.status for e in _since(agents["cn"], t_move) if isinstance(e, BaSent)]
            assert from_cn[:2] == ([0] if mode == "strict" else [135, 0]), from_cn

            # the HA: kill -9, the replay refused, the MN registered again
            t_restart = time.monotonic_ns()
            agents.restart("ha", kill=True)
            assert agents["ha"].ctl("bindings")["bindings"] == []
            events = _replay_verdict(lab, agents, "ha", replay_ha, t_restart)
            ha_mark = {"strict": 3, "reserve": 1 + RESERVE}[mode]
            assert [(e.seq, e.last_seq) for e in events if isinstance(e, BuRejected)] == [(1, ha_mark)]
            assert agents["ha"].ctl("bindings")["bindings"] == []
            t_move = lab.move("mn", "ar2")
            agents.wait(lambda: agents.mn_bound("mn") == second and agents["ha"].ctl("bindings")["bindings"], 10,
                        "the home registration after the HA's restart")
            from_ha = [e.status for e in _since(agents["ha"], t_move) if isinstance(e, BaSent)]
            assert from_ha[:2] == ([0] if mode == "strict" else [135, 0]), from_ha

            # the MN: kill -9; it goes on after every number it sent, and nothing refuses them
            sent = agents["mn"].events()
            last = {peer: max(e.seq for e in sent if isinstance(e, BuSent) and e.peer == peer) for peer in (cn, ha)}
            t_restart = time.monotonic_ns()
            agents.restart("mn", kill=True)
            agents.wait(lambda: agents.mn_bound("mn"), 10, "the restarted MN's bindings")
            after = _since(agents["mn"], t_restart)
            for peer in (cn, ha):
                seqs = [e.seq for e in after if isinstance(e, BuSent) and e.peer == peer]
                assert seqs and min(seqs) > last[peer], (peer, seqs, last[peer])
            assert {e.status for e in after if isinstance(e, BaReceived)} == {0}

            for node in ("cn", "ha", "mn"):
                status = agents[node].ctl("status")
                assert status["keep_warm_ms"] == keep_warm
                # a kernel from 6.12 on takes the agent's short slice; an older one says why not
                assert status["short_slice"] == "granted" or not kernel_takes_short_slice(), status["short_slice"]
                if keep_warm:
                    agents.wait(lambda n=node: agents[n].ctl("status")["rehearsals"] > 0, 5, f"{node}'s rehearsals")
                else:
                    assert status["rehearsals"] == 0
            cn_cap.stop()
            logs = "".join(agents[n].event_log.read_text() for n in ("cn", "ha", "mn"))
            assert "2001:db8:fff" not in logs and "rehearsal" not in logs  # the rehearsals' parties: never here
            rehearsal_prefix = bytes.fromhex("20010db8ff")
            assert not [f for f in read_frames(str(cn_cap.path)) if rehearsal_prefix in (f.ipv6 or b"")]


def test_mn_starting_at_home_registers_when_it_leaves_and_deregisters_on_return():
    with Lab("handover", start="home") as lab:
        home = lab.addresses.home_address("mn")
        with LabAgents(lab, "precomputed") as agents:
            agents.wait(lambda: agents.mn_bound("mn") == home, 15, "the MN to settle at home")
            assert agents.cn_binding("cn") is None and agents["ha"].ctl("bindings")["bindings"] == []
            lab.move("mn", "ar1")
            coa = agents.wait(lambda: (c := agents.mn_bound("mn")) != home and c, 10, "the binding away from home")
            assert agents["ha"].ctl("bindings")["bindings"][0]["careof"] == coa
            lab.move("mn", "home")
            agents.wait(lambda: agents.mn_bound("mn") == home and agents.cn_binding("cn") is None
                        and agents["ha"].ctl("bindings")["bindings"] == [], 10, "de-registration at home")
            deleted = [e for e in agents["cn"].events() if isinstance(e, BindingDeleted)]
            assert deleted and deleted[-1].mechanism == "precomputed"


CRASHING_RUN = """
import sys
from testbed.lab.lab import Lab
from testbed.lab.agents import LabAgents
lab = Lab("handover").start()
agents = LabAgents(lab, "precomputed")
agents.start()
print(agents.keys.directory, agents._sockets, lab.run_id, flush=True)
sys.stdin.read()  # until the test kills us
"""


def test_lab_clean_removes_the_key_files_of_a_crashed_run():
    import os
    import signal

    proc = subprocess.Popen([sys.executable, "-c", CRASHING_RUN], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        keys, sockets, run_id = proc.stdout.readline().split()
        assert os.path.isdir(keys) and any(Path(keys).iterdir())
        assert oct(os.stat(keys).st_mode & 0o777) == "0o700"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert os.path.isdir(keys)  # a crash leaves them...
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "lab", "clean"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not os.path.exists(keys) and not os.path.exists(sockets)  # ...and clean removes them
    assert run_id in done.stdout + done.stderr
