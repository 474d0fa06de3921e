"""The binding storm: an access router fails and every mobile node of the corporate network
moves at once (issue 12, item 5).

A ``corporate`` lab comes up with ``mobiles`` mobile nodes, all on AR1's segment
(``placement=ar1``), one CN and the HA, each MN running its own agent. Most MNs have RFC 4449
preconfigured data with the CN; a share (``rr_share``) uses return routability instead. Once
every MN is bound (the CN's and the HA's binding caches hold every home address at its AR1
care-of address, and every MN's binding update list is bound: a deadline, not a sleep), AR1
fails: its access interface goes down (no forwarding, no more RAs, no goodbye RA with router
lifetime 0, as a crash would leave it) and every MN's link moves to AR2's segment at once
(``Lab.move_all``: every port leaves AR1's bridge, then each joins AR2's, back to back). The run waits, on the CN's and the HA's event logs
as the agents write them (nothing polls the agents during the storm), until every home
address is bound at its AR2 care-of address at both, or the deadline passes; then the binding
caches and every MN's binding update list are read over the control sockets.

Measured from the agents' typed event logs (testbed/agent/events.py, testbed/mip6/events.py):
per MN the move to its usable care-of address, to the CN's BA and to the HA's BA; at the CN
each BU's arrival (kernel receive stamp) to its BA leaving (``packet_sent.trigger_t_ns``),
during the storm and, for comparison, for the first bindings (when the MNs started in
batches); the same at the HA; how long from the failure until every binding followed; what
was lost (a binding that did not follow, a BU the CN received and never answered, BUs the
MNs had to retransmit). Scale figures: lab bring-up, agent start-up, memory and file
descriptors of the agents, key installation. The pause monitor (testbed/lab/pauses.py) runs
throughout; the storm window's pause figures are reported beside our own load.

Results directory: ``spec.json``, ``metrics.csv`` (one row per MN), ``summary.json``,
``host.json``, ``report.md`` and the lab's run directory ``lab/`` (event logs, daemon logs).
No key material is ever written there.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import resource
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed.agent.events import DurableWrite
from testbed.lab.agents import LabAgents, LocalKeys
from testbed.lab.errors import LabTimeout
from testbed.lab.handover_check import EventTail, bu_turnarounds
from testbed.lab.lab import Lab
from testbed.lab.pauses import PauseMonitor, describe
from testbed.lab.procstat import cpu_seconds, rss_bytes
from testbed.mip6.events import (
    BindingCreated,
    BindingUpdated,
    BuReceived,
    BuSent,
    CnRegistered,
    CoaUsable,
    Drop,
    Event,
    HomeBindingCreated,
    HomeBindingUpdated,
    HomeRegistered,
    Retransmit,
)

DEFAULT_MOBILES = 100
MAX_MOBILES = 120
DEFAULT_RR_SHARE = 0.2
START_BATCH = 10  # MN agents started at once (2 CPUs: more only queue for them)
BIND_TIMEOUT_S = 30.0  # plus BIND_PER_MN_S per MN: the first bindings, after the agents are up
BIND_PER_MN_S = 0.2
STORM_TIMEOUT_S = 30.0  # every binding must have followed within this after the failure
POLL_S = 0.02
LINK_PRIORITY = 20  # the delay lines' SCHED_FIFO priority with realtime_links: above every agent, below the watchers
KEY_INSTALLERS = ("local", "ansible")


@dataclass
class StormSpec:
    mobiles: int = DEFAULT_MOBILES
    rr_share: float = DEFAULT_RR_SHARE  # share of the MNs using return routability with the CN
    keys: str = "local"  # "local" (LocalKeys, tmpfs) or "ansible" (AnsibleKeys, keys.yml)
    params: dict = field(default_factory=dict)  # lab parameters of the corporate topology (delays)
    persistence: str | dict = "strict"
    realtime_links: bool = False  # the lab's delay lines at SCHED_FIFO LINK_PRIORITY (see realtime_delay_lines)


@dataclass
class MobileRow:
    mn: str
    mechanism: str
    careof: str
    t_move_ns: int
    move_to_coa_ms: float | None = None
    move_to_bu_ms: float | None = None  # the first BU to the CN after the move
    move_to_cn_ba_ms: float | None = None
    move_to_ha_ba_ms: float | None = None
    # the BU to the CN that was answered, in three parts: MN -> CN (the network: delay lines,
    # kernels), the CN's arrival-to-BA, CN -> the MN's log of the BA
    bu_to_cn_ms: float | None = None
    cn_turnaround_ms: float | None = None
    ba_to_mn_ms: float | None = None
    retransmits: int = 0
    cn_followed: bool = False
    ha_followed: bool = False
    mn_bound: bool = False

    @property
    def followed(self) -> bool:
        return self.cn_followed and self.ha_followed and self.mn_bound


def rr_mobiles(mobiles: list[str], share: float) -> list[str]:
    """Every k-th MN uses return routability, spread over the list (``share`` of them, rounded)."""
    count = round(len(mobiles) * share)
    if count <= 0:
        return []
    step = len(mobiles) / count
    return [mobiles[int(i * step)] for i in range(count)]


def quantiles(values: list[float]) -> dict:
    """count, median, p99 (nearest rank), max, in the values' unit (rounded to µs for ms)."""
    if not values:
        return {"count": 0, "median": None, "p99": None, "max": None}
    v = sorted(values)
    return {"count": len(v), "median": round(statistics.median(v), 3),
            "p99": round(v[min(len(v) - 1, max(0, -(-99 * len(v) // 100) - 1))], 3), "max": round(v[-1], 3)}


def _key_installer(spec: StormSpec, out: Path):
    if spec.keys == "ansible":
        from testbed.provision.labkeys import AnsibleKeys  # the provisioning layer, only when asked

        return AnsibleKeys(record=out / "ansible")
    return LocalKeys()


ProgressFn = Callable[..., None]


def run_storm(spec: StormSpec, out: Path, progress: ProgressFn | None = None) -> dict:
    """Run the storm of ``spec`` and write its results into ``out``; returns the summary.
    Ctrl-C ends the run: what was measured is kept and the results are still written."""
    tell = progress or (lambda kind, **info: None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(asdict(spec), indent=1))
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%S"), time.monotonic()
    run = _Run(spec)
    host = PauseMonitor()
    cpu0 = _cpu_seconds()
    try:
        host.start()
        _storm(spec, out, run, tell)
    except KeyboardInterrupt:
        run.interrupted = True
    except LabTimeout as exc:
        run.error = str(exc)
    finally:
        restore = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            host.stop()
            summary = _write_results(spec, out, run, host, started, time.monotonic() - t0, _cpu_seconds() - cpu0)
        finally:
            signal.signal(signal.SIGINT, restore)
    return summary


@dataclass
class _Run:
    spec: StormSpec
    error: str | None = None
    interrupted: bool = False
    all_bound_before: bool = False
    t_fail_ns: int | None = None
    moves_span_ms: float | None = None  # the first to the last move's netlink call
    rows: list[MobileRow] = field(default_factory=list)
    events: dict[str, list[Event]] = field(default_factory=dict, repr=False)
    scale: dict = field(default_factory=dict)
    t_all_followed_ns: int | None = None
    cn_node: str = "cn1"
    ha_node: str = "ha"
    rr: list[str] = field(default_factory=list)
    homes: dict[str, str] = field(default_factory=dict)  # MN -> home address


def _storm(spec: StormSpec, out: Path, run: _Run, tell: ProgressFn) -> None:
    t = time.monotonic()
    with Lab("corporate", run_dir=out / "lab", n_mns=spec.mobiles, n_cns=1, placement="ar1", **spec.params) as lab:
        plan = lab.addresses
        mobiles = list(plan.mobiles)
        run.rr = rr_mobiles(mobiles, spec.rr_share)
        run.homes = {mn: plan.home_address(mn) for mn in mobiles}
        run.cn_node, run.ha_node = next(iter(plan.correspondents)), plan.home_agent_node
        run.scale["lab_up_s"] = round(time.monotonic() - t, 2)
        run.scale["lab_timings_s"] = {k: round(v, 2) for k, v in lab.timings.items()}
        run.scale["delay_backend"] = lab.delay_backend
        if spec.realtime_links:
            run.scale["realtime_delay_lines"] = realtime_delay_lines(lab)
        tell("up", seconds=run.scale["lab_up_s"], mobiles=len(mobiles))
        keys = _key_installer(spec, out)
        t = time.monotonic()
        with LabAgents(lab, "precomputed", keys=keys, persistence=spec.persistence, rr_mobiles=run.rr,
                       start_batch=START_BATCH) as agents:
            run.scale["agents_up_s"] = round(time.monotonic() - t, 2)
            if spec.keys == "ansible":
                run.scale["key_push_s"] = round(sum(p.seconds for p in keys.pushes), 2)
            run.scale |= _agent_resources(agents)
            tell("agents", seconds=run.scale["agents_up_s"])
            try:
                t = time.monotonic()
                old_prefix = plan.segment("ar1").subnet
                _wait_all_bound(agents, mobiles, old_prefix, BIND_TIMEOUT_S + BIND_PER_MN_S * len(mobiles))
                run.all_bound_before = True
                run.scale["bound_after_agents_up_s"] = round(time.monotonic() - t, 2)
                tell("bound")
                _fail_and_move(lab, agents, run, mobiles, tell)
            finally:
                run.events = {node: handle.events() for node, handle in agents.agents.items()}
            run.scale["controller_fds"] = len(os.listdir("/proc/self/fd"))
    run.scale["lab_closed_s"] = round(lab.timings.get("close: stopping processes", 0.0), 2)


def realtime_delay_lines(lab) -> int:
    """The lab's delay lines (its own processes, tag ``delayline``) at SCHED_FIFO LINK_PRIORITY,
    so that a hundred agents waking at once do not starve the emulated links (a frame then
    leaves late, and the protocol's retransmission timers measure the emulator). Returns how
    many were set; none where real-time priority is refused."""
    count = 0
    for proc in lab.processes:
        if proc.tag == "delayline" and proc.running():
            try:
                os.sched_setscheduler(proc.pid, os.SCHED_FIFO, os.sched_param(LINK_PRIORITY))
                count += 1
            except OSError:
                continue
    return count


def _agent_resources(agents: LabAgents) -> dict:
    """Memory (RSS) and open file descriptors of the agents, per MN agent and in all."""
    rss, fds, cpu = [], [], []
    for handle in agents.agents.values():
        try:
            cpu.append(cpu_seconds(handle.process.pid))  # its start-up (and first binding)
            rss.append(rss_bytes(handle.process.pid))
            fds.append(len(os.listdir(f"/proc/{handle.process.pid}/fd")))
        except OSError:
            continue
    return {"agents": len(agents.agents),
            "agent_rss_mb": {"median": round(statistics.median(rss) / 2**20, 1), "total": round(sum(rss) / 2**20, 1)}
            if rss else None,
            "agent_fds": {"median": statistics.median(fds), "max": max(fds), "total": sum(fds)} if fds else None,
            "agent_start_cpu_s": {"median": round(statistics.median(cpu), 2), "total": round(sum(cpu), 1)}
            if cpu else None,
            "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


def _bound_homes(agents: LabAgents, node: str, prefix: str) -> dict[str, str]:
    """home -> care-of address of the bindings of ``node`` (CN or HA) whose CoA is on ``prefix``."""
    net = ipaddress.IPv6Network(prefix)
    return {b["home"]: b["careof"] for b in agents[node].ctl("bindings", timeout=10.0)["bindings"]
            if ipaddress.IPv6Address(b["careof"]) in net}


def _wait_all_bound(agents: LabAgents, mobiles: list[str], prefix: str, timeout: float) -> None:
    plan = agents.lab.addresses
    cn, ha = next(iter(plan.correspondents)), plan.home_agent_node
    homes = {plan.home_address(mn) for mn in mobiles}

    def bound() -> bool:
        return homes <= set(_bound_homes(agents, cn, prefix)) and homes <= set(_bound_homes(agents, ha, prefix))

    deadline = time.monotonic() + timeout
    while not bound():
        if time.monotonic() >= deadline:
            missing = sorted(homes - set(_bound_homes(agents, cn, prefix)))
            raise LabTimeout(f"not every MN bound within {timeout:g} s ({len(missing)} missing at the CN)")
        time.sleep(0.1)
    for mn in mobiles:  # and each MN's own view: every BUL entry bound
        agents.wait(lambda m=mn: agents.mn_bound(m), 10.0, f"{mn}'s binding update list")


def _fail_and_move(lab, agents: LabAgents, run: _Run, mobiles: list[str], tell: ProgressFn) -> None:
    plan = lab.addresses
    new_prefix = plan.segment("ar2").subnet
    expected = {mn: plan.expected_coa(mn, new_prefix) for mn in mobiles}
    home_of = {plan.home_address(mn): mn for mn in mobiles}
    cn_tail, ha_tail = EventTail(agents[run.cn_node].event_log), EventTail(agents[run.ha_node].event_log)
    cn_tail.poll(), ha_tail.poll()
    ar1_intf = next(i.name for i in plan.nodes["ar1"].interfaces.values() if i.ra)
    run.t_fail_ns = time.monotonic_ns()
    lab.node("ar1").cmd(f"ip link set dev {ar1_intf} down")  # AR1 fails: no forwarding, no RAs
    moves = lab.move_all(mobiles, "ar2")  # every MN at once, back to back
    run.moves_span_ms = round((max(moves.values()) - min(moves.values())) / 1e6, 3)
    run.rows = [MobileRow(mn, "rr" if mn in run.rr else "precomputed", expected[mn], moves[mn]) for mn in mobiles]
    tell("storm", mobiles=len(mobiles), span_ms=run.moves_span_ms)
    at_cn: set[str] = set()
    at_ha: set[str] = set()
    last = 0
    deadline = time.monotonic() + STORM_TIMEOUT_S
    while len(at_cn) < len(mobiles) or len(at_ha) < len(mobiles):
        for e in cn_tail.poll():
            if isinstance(e, (BindingCreated, BindingUpdated)) and home_of.get(e.home) and \
                    e.careof == expected[home_of[e.home]]:
                at_cn.add(e.home)
                last = max(last, e.t_ns)
        for e in ha_tail.poll():
            if isinstance(e, (HomeBindingCreated, HomeBindingUpdated)) and home_of.get(e.home) and \
                    e.careof == expected[home_of[e.home]]:
                at_ha.add(e.home)
                last = max(last, e.t_ns)
        if time.monotonic() >= deadline:
            run.error = (f"after {STORM_TIMEOUT_S:g} s {len(mobiles) - len(at_cn)} bindings had not followed at "
                         f"the CN, {len(mobiles) - len(at_ha)} at the HA")
            break
        time.sleep(POLL_S)
    else:
        run.t_all_followed_ns = last
    tell("followed", seconds=None if run.t_all_followed_ns is None else (last - run.t_fail_ns) / 1e9)
    # The binding caches and the MNs' own lists, read once the storm is over.
    cn_now = {b["home"]: b["careof"] for b in agents[run.cn_node].ctl("bindings", timeout=10.0)["bindings"]}
    ha_now = {b["home"]: b["careof"] for b in agents[run.ha_node].ctl("bindings", timeout=10.0)["bindings"]}
    for row in run.rows:
        home = plan.home_address(row.mn)
        row.cn_followed = cn_now.get(home) == row.careof
        row.ha_followed = ha_now.get(home) == row.careof
        row.mn_bound = agents.mn_bound(row.mn) == row.careof


def _cpu_seconds() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


# ------------------------------------------------------------------ results


def _fill_rows(run: _Run, homes: dict[str, str]) -> None:
    """Each MN's points after its move, from its own event log and the CN's."""
    cn_events = run.events.get(run.cn_node, [])
    answered = {arrived: out for arrived, _, out in bu_turnarounds(cn_events)}
    at_cn = {(e.home, e.careof, e.seq): e.t_ns for e in cn_events
             if isinstance(e, BuReceived) and e.t_ns in answered}
    for row in run.rows:
        events = [e for e in run.events.get(row.mn, []) if e.t_ns >= row.t_move_ns]
        ms = lambda t: None if t is None else round((t - row.t_move_ns) / 1e6, 3)  # noqa: E731
        coa = next((e.t_ns for e in events if isinstance(e, CoaUsable) and e.careof == row.careof), None)
        bu = next((e.t_ns for e in events if isinstance(e, BuSent) and e.careof == row.careof
                   and e.mechanism != "home"), None)
        cn_ba = next((e.t_ns for e in events if isinstance(e, CnRegistered) and e.careof == row.careof), None)
        ha_ba = next((e.t_ns for e in events if isinstance(e, HomeRegistered) and e.careof == row.careof), None)
        row.move_to_coa_ms, row.move_to_bu_ms = ms(coa), ms(bu)
        row.move_to_cn_ba_ms, row.move_to_ha_ba_ms = ms(cn_ba), ms(ha_ba)
        row.retransmits = sum(1 for e in events if isinstance(e, Retransmit))
        registered = next((e for e in events if isinstance(e, CnRegistered) and e.careof == row.careof), None)
        if registered is not None:
            arrived = at_cn.get((homes.get(row.mn), row.careof, registered.seq))
            sent = next((e.t_ns for e in events if isinstance(e, BuSent) and e.mechanism != "home"
                         and e.seq == registered.seq), None)
            if arrived is not None and sent is not None:
                row.bu_to_cn_ms = round((arrived - sent) / 1e6, 3)
                row.cn_turnaround_ms = round((answered[arrived] - arrived) / 1e6, 3)
                row.ba_to_mn_ms = round((registered.t_ns - answered[arrived]) / 1e6, 3)


def _turnarounds(events: list[Event], since_ns: int | None, until_ns: int | None = None) -> dict:
    """BU arrival (kernel stamp) to BA leaving, ms, for BUs that arrived in [since, until);
    also the BUs received there that no BA answered."""
    lo, hi = since_ns or 0, until_ns or (1 << 63)
    triples = [t for t in bu_turnarounds(events) if lo <= t[0] < hi]
    received = [e for e in events if isinstance(e, BuReceived) and lo <= e.t_ns < hi]
    turn = [(out - arrived) / 1e6 for arrived, _, out in triples]
    wake = [(woke - arrived) / 1e6 for arrived, woke, _ in triples]
    writes = [(e.end_t_ns - e.t_ns) / 1e6 for e in events if isinstance(e, DurableWrite) and lo <= e.t_ns < hi]
    span = (max(t[2] for t in triples) - min(t[0] for t in triples)) / 1e9 if len(triples) > 1 else None
    return {"bu_to_ba_ms": quantiles(turn), "arrival_to_wake_ms": quantiles(wake),
            "durable_write_ms": quantiles(writes),
            "bus_received": len(received), "bas_sent": len(triples),
            "unanswered": len(received) - len(triples),
            "window_s": None if span is None else round(span, 3),
            "bas_per_s": None if not span else round(len(triples) / span, 1),
            "_windows": [(a, o) for a, _, o in triples]}


def _write_results(spec: StormSpec, out: Path, run: _Run, host: PauseMonitor, started: str,
                   duration_s: float, own_cpu_s: float) -> dict:
    _fill_rows(run, run.homes)
    cn_events, ha_events = run.events.get(run.cn_node, []), run.events.get(run.ha_node, [])
    cn_storm = _turnarounds(cn_events, run.t_fail_ns)
    cn_before = _turnarounds(cn_events, None, run.t_fail_ns)
    ha_storm = _turnarounds(ha_events, run.t_fail_ns)
    ha_before = _turnarounds(ha_events, None, run.t_fail_ns)
    windows = cn_storm.pop("_windows")
    for d in (cn_before, ha_storm, ha_before):
        d.pop("_windows")
    host_summary = host.summary() if host.started_mono_ns else None
    if host_summary is not None:
        capacity = host_summary["seconds"] * host_summary["monitor"]["cpus"]
        load = host_summary["load"]
        ours = max(0.0, own_cpu_s - host_summary["monitor"]["watcher_cpu_s"]) / capacity if capacity else None
        load["ours_fraction"] = None if ours is None else round(ours, 4)
        busy = load.get("busy_fraction")
        load["others_fraction"] = None if ours is None or busy is None else round(max(0.0, busy - ours), 4)
    undisturbed = [(o - a) / 1e6 for a, o in windows if not host.overlaps_monotonic(a, o)]
    cn_storm["bu_to_ba_undisturbed_ms"] = quantiles(undisturbed)
    storm_window = None
    if run.t_fail_ns is not None:
        end = run.t_all_followed_ns or (run.t_fail_ns + int(STORM_TIMEOUT_S * 1e9))
        storm_window = {"seconds": round((end - run.t_fail_ns) / 1e9, 3),
                        "paused_ms": host.paused_ms_monotonic(run.t_fail_ns, end) if host.started_mono_ns else None}
    rows = run.rows
    followed = [r for r in rows if r.followed]
    cn_drops = {}
    for e in cn_events:
        if isinstance(e, Drop) and run.t_fail_ns and e.t_ns >= run.t_fail_ns:
            cn_drops[e.reason] = cn_drops.get(e.reason, 0) + 1
    per_mechanism = {}
    for mech in ("precomputed", "rr"):
        mine = [r for r in rows if r.mechanism == mech]
        if mine:
            per_mechanism[mech] = {
                "mobiles": len(mine),
                "move_to_coa_ms": quantiles([r.move_to_coa_ms for r in mine if r.move_to_coa_ms is not None]),
                "move_to_cn_ba_ms": quantiles([r.move_to_cn_ba_ms for r in mine if r.move_to_cn_ba_ms is not None]),
                "coa_to_cn_ba_ms": quantiles([r.move_to_cn_ba_ms - r.move_to_coa_ms for r in mine
                                              if r.move_to_cn_ba_ms is not None and r.move_to_coa_ms is not None]),
                "move_to_ha_ba_ms": quantiles([r.move_to_ha_ba_ms for r in mine if r.move_to_ha_ba_ms is not None]),
                **{f"{part}_ms": quantiles([getattr(r, f"{part}_ms") for r in mine if getattr(r, f"{part}_ms") is not None])
                   for part in ("move_to_bu", "bu_to_cn", "cn_turnaround", "ba_to_mn")},
            }
    summary = {
        "started": started,
        "duration_s": round(duration_s, 1),
        "interrupted": run.interrupted,
        "error": run.error,
        "mobiles": spec.mobiles,
        "rr_mobiles": len(run.rr),
        "keys": spec.keys,
        "persistence": spec.persistence,
        "realtime_links": spec.realtime_links,
        "all_bound_before": run.all_bound_before,
        "followed": len(followed),
        "lost": len(rows) - len(followed) if rows else None,
        "not_followed": [r.mn for r in rows if not r.followed],
        "moves_span_ms": run.moves_span_ms,
        "all_followed_after_s": None if run.t_all_followed_ns is None or run.t_fail_ns is None
        else round((run.t_all_followed_ns - run.t_fail_ns) / 1e9, 3),
        "retransmits": sum(r.retransmits for r in rows),
        "per_mechanism": per_mechanism,
        "cn": {"storm": cn_storm, "first_bindings": cn_before, "drops_in_storm": cn_drops},
        "ha": {"storm": ha_storm, "first_bindings": ha_before},
        "storm_window": storm_window,
        "scale": run.scale,
        "host": host_summary,
    }
    summary["ok"] = (not run.interrupted and run.error is None and run.all_bound_before and bool(rows)
                     and summary["lost"] == 0 and cn_storm["unanswered"] == 0)
    with open(out / "metrics.csv", "w", newline="") as f:
        names = [n for n in MobileRow.__dataclass_fields__] + ["followed"]
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        for r in rows:
            w.writerow({**asdict(r), "followed": r.followed})
    (out / "host.json").write_text(json.dumps({
        "summary": host_summary,
        "pauses": [{"cpu": p.cpu, "mono_start_ns": p.mono_start, "mono_end_ns": p.mono_end} for p in host.pauses],
    }, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(report(summary))
    return summary


def _fmt(q: dict) -> str:
    if not q or q.get("median") is None:
        return "-"
    return f"{q['median']:.2f} / {q['p99']:.2f} / {q['max']:.2f} (n={q['count']})"


def report(s: dict) -> str:
    """The results as Markdown."""
    cn, ha, scale = s["cn"], s["ha"], s["scale"]
    lines = [
        "# Binding storm: AR1 fails, every mobile node moves to AR2 at once",
        "",
        f"{s['mobiles']} mobile nodes, each with its own agent ({s['mobiles'] - s['rr_mobiles']} with RFC 4449 "
        f"precomputed data, {s['rr_mobiles']} with return routability), one CN, one HA; keys: {s['keys']}; "
        f"persistence: {s['persistence']}; delay lines at real-time priority: "
        f"{'yes (' + str(scale.get('realtime_delay_lines')) + ')' if scale.get('realtime_delay_lines') else 'no'}. Started {s['started']}, {s['duration_s']} s.",
        "",
        f"- **ok: {'yes' if s['ok'] else 'NO'}**" + (f" (error: {s['error']})" if s["error"] else "")
        + (" (interrupted)" if s["interrupted"] else ""),
        f"- all bound before the failure: {'yes' if s['all_bound_before'] else 'NO'}",
        f"- bindings that followed (CN, HA and the MN's own list at the AR2 care-of address): "
        f"{s['followed']} of {s['mobiles']}; lost: {s['lost']}"
        + (f" ({', '.join(s['not_followed'][:10])})" if s["not_followed"] else ""),
        f"- BUs the CN received in the storm and never answered: {cn['storm']['unanswered']}; "
        f"MN retransmissions: {s['retransmits']}; CN drops in the storm: {cn['drops_in_storm'] or 'none'}",
        f"- the {s['mobiles']} moves took {s['moves_span_ms']} ms (first to last netlink call); every binding "
        f"followed {s['all_followed_after_s']} s after the failure",
        "",
        "## Latency, ms: median / p99 / max (n)",
        "",
        "| what | storm | first bindings (MNs starting in batches) |",
        "|---|---|---|",
        f"| CN: BU arrival to BA leaving | {_fmt(cn['storm']['bu_to_ba_ms'])} | {_fmt(cn['first_bindings']['bu_to_ba_ms'])} |",
        f"| CN: same, BUs no host pause overlapped | {_fmt(cn['storm']['bu_to_ba_undisturbed_ms'])} | |",
        f"| CN: BU arrival to the agent awake (negative: it arrived while the agent worked through a batch) | "
        f"{_fmt(cn['storm']['arrival_to_wake_ms'])} | {_fmt(cn['first_bindings']['arrival_to_wake_ms'])} |",
        f"| CN: durable writes (persistence) | {_fmt(cn['storm']['durable_write_ms'])} | "
        f"{_fmt(cn['first_bindings']['durable_write_ms'])} |",
        f"| HA: BU arrival to BA leaving | {_fmt(ha['storm']['bu_to_ba_ms'])} | {_fmt(ha['first_bindings']['bu_to_ba_ms'])} |",
        f"| HA: durable writes | {_fmt(ha['storm']['durable_write_ms'])} | {_fmt(ha['first_bindings']['durable_write_ms'])} |",
    ]
    for mech, m in s["per_mechanism"].items():
        lines += [f"| {mech} MNs: move to usable CoA | {_fmt(m['move_to_coa_ms'])} | |",
                  f"| {mech} MNs: move to the CN's BA | {_fmt(m['move_to_cn_ba_ms'])} | |",
                  f"| {mech} MNs: usable CoA to the CN's BA | {_fmt(m['coa_to_cn_ba_ms'])} | |",
                  f"| {mech} MNs: move to the HA's BA | {_fmt(m['move_to_ha_ba_ms'])} | |",
                  f"| {mech} MNs: move to the BU to the CN leaving | {_fmt(m['move_to_bu_ms'])} | |",
                  f"| {mech} MNs: that BU on its way to the CN | {_fmt(m['bu_to_cn_ms'])} | |",
                  f"| {mech} MNs: the CN's turnaround of it | {_fmt(m['cn_turnaround_ms'])} | |",
                  f"| {mech} MNs: its BA on the way back, to the MN's log | {_fmt(m['ba_to_mn_ms'])} | |"]
    lines += ["", f"CN in the storm: {cn['storm']['bas_sent']} BAs in {cn['storm']['window_s']} s "
              f"({cn['storm']['bas_per_s']} BAs/s while it lasted).", "", "## Scale", ""]
    rss, fds = scale.get("agent_rss_mb") or {}, scale.get("agent_fds") or {}
    lines += [
        f"- lab (Mininet, {s['mobiles'] + 6} nodes, bridges, delay lines, radvd) up in {scale.get('lab_up_s')} s "
        f"({scale.get('lab_timings_s')}); link delay: {scale.get('delay_backend')}",
        f"- {scale.get('agents')} agents up in {scale.get('agents_up_s')} s (MNs {START_BATCH} at a time)"
        + (f"; keys pushed with Ansible in {scale['key_push_s']} s" if scale.get("key_push_s") is not None else "")
        + f"; all bound {scale.get('bound_after_agents_up_s')} s later",
        f"- CPU time per agent by then (start-up, keys, first binding): median "
        f"{(scale.get('agent_start_cpu_s') or {}).get('median')} s, {(scale.get('agent_start_cpu_s') or {}).get('total')} s in all",
        f"- agent memory: median {rss.get('median')} MB RSS, {rss.get('total')} MB in all; file descriptors per "
        f"agent median {fds.get('median')}, max {fds.get('max')}, {fds.get('total')} in all (limit per process "
        f"{scale.get('fd_limit')}); the controller held {scale.get('controller_fds')}",
        "",
        "## Host",
        "",
    ]
    if s["host"]:
        lines.append(describe(s["host"]))
        if s["storm_window"]:
            lines.append("")
            lines.append(f"Within the storm window ({s['storm_window']['seconds']} s from the failure until every "
                         f"binding followed) a CPU was paused or held {s['storm_window']['paused_ms']} ms.")
    return "\n".join(lines) + "\n"
