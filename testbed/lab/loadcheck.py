"""One correspondent agent under the load of N emulated mobile nodes, in a ``load`` lab.

``run_load(lab, settings, mobiles=N)``:

1. writes the preconfigured data of every precomputed mobile node into a fresh 0700
   directory on tmpfs (removed afterwards: keys never land in results);
2. measures in-process, on this machine and now: reading and checking those files and
   building the engine's peers; the CN engine's cost per binding, fed the very packets of
   the run (``EngineCost``: sampled now and again after the closed-loop phases); the
   durable write of the agents' store on the file system of the agent's state directory;
3. starts the CN agent (``testbed agent``, the real process) in node ``cn`` with
   ``preconfigured_dir`` = that directory, and times its start-up: from spawning it to its
   ``agent_started`` event;
4. drives the fleet from node ``load`` over the link (``testbed.lab.loadlink``): every
   mobile's first registration (closed loop), ``moves`` rounds of moves (closed loop), then
   open loop at ``rate`` for ``open_seconds``; the agent's CPU time (``/proc/<pid>/stat``)
   and resident memory are read between the phases;
5. asks the agent for its bindings: a mobile whose binding is missing, or is not at the
   care-of address and sequence number of its last accepted BU, is *lost*; every BA's
   authenticator is checked with the mobile's Kbm;
6. reads the agent's event log: per BU, from the kernel's receive stamp to the BA leaving.

The figures come back as a plain dict (see ``testbed.experiments.load``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from testbed.agent.config import parse_agent_config
from testbed.agent.control import request
from testbed.agent.eventlog import read_typed_events
from testbed.agent.events import AgentStarted, PacketSent
from testbed.errors import ConfigError
from testbed.lab.enginecost import (
    EngineTransport,
    durable_write_cost,
    key_loading_cost,
    mean_us,
    median_us,
    replay_cost,
)
from testbed.lab.errors import LabError, LabTimeout
from testbed.lab.fleet import HOME_BASE, MAX_ROUND, Fleet, is_return_routability
from testbed.lab.loaddriver import Job, LoadDriver, PhaseResult
from testbed.lab.loadlink import LinkTransport
from testbed.lab.procstat import cpu_seconds, filesystem_type, rss_bytes
from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.events import Event
from testbed.mip6.keys import generate
from testbed.storage.keyfiles import write_new
from topologies.load import CAREOF_BLOCK, HOME_BLOCK

START_TIMEOUT_S = 120.0  # 10,000 key files take a while on a slow machine
KEY_ROOT = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
RESERVED_CN_KEYS = ("role", "node", "address", "state_dir", "event_log", "control_socket", "preconfigured",
                    "preconfigured_dir", "interfaces")


@dataclass
class LoadSettings:
    rr_share: float = 0.1  # share of the mobiles that use return routability
    moves: int = 1  # rounds of moves after the first registration, closed loop
    window: int = 32  # closed loop: jobs in flight
    rate: float | None = None  # open loop: jobs per second (None: half the engine-bound rate; 0: no open loop)
    open_seconds: float = 2.0
    ba_timeout_s: float = 1.0
    cn_options: dict = field(default_factory=dict)  # more keys for the CN agent's configuration
    state_root: Path | None = None  # where the CN's state directory goes (default: the lab's run directory)
    profile: Path | None = None  # cProfile output of the CN agent
    keep_dir: Path | None = None  # keep the CN's event log and configuration here


def check_cn_options(options: dict) -> None:
    """ConfigError now (before any lab) for options the CN agent would refuse or the run sets."""
    taken = [k for k in options if k in RESERVED_CN_KEYS]
    if taken:
        raise ConfigError(f"--cn-option {taken[0]}: set by the load run itself")
    parse_agent_config({"role": "cn", "address": "2001:db8:e:1::2", "state_dir": "/nonexistent",
                        "event_log": "/nonexistent", "control_socket": "/nonexistent", **options}, "--cn-option")


def prepare_lab(lab) -> None:
    """Blackhole routes on the load node for the emulated home and care-of addresses: the
    CN's packets to them end in the load node's packet socket, then in nothing."""
    for block in (HOME_BLOCK, CAREOF_BLOCK):
        done = lab.run("load", ["ip", "-6", "route", "replace", "blackhole", block], timeout=10, tag="route")
        if done.returncode != 0:
            raise LabError(f"load node: could not add a blackhole route for {block}: {done.stderr.strip()}")


# ---------------------------------------------------------------------- figures


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def phase_figures(result: PhaseResult, cpu_s: float | None = None) -> dict:
    """Rate, latency and counts of one phase (times in ms, rates per second)."""
    jobs = result.jobs
    accepted = result.accepted
    lat_ms = [j.latency_ns / 1e6 for j in accepted]
    by_mech = {}
    for mech in ("precomputed", "rr"):
        lat = [j.latency_ns / 1e6 for j in accepted if j.mobile.mechanism == mech]
        if lat:
            by_mech[mech] = {"median_ms": _r(statistics.median(lat)), "p99_ms": _r(percentile(lat, 0.99)),
                             "bindings": len(lat)}
    first = min((j.started_ns for j in jobs if j.started_ns), default=result.started_ns)
    last = max((j.ba_ns for j in accepted), default=first)
    span_s = max(1e-9, (last - first) / 1e9)
    bus = sum(len(j.sent) for j in jobs)
    out = {
        "phase": result.name, "mode": result.mode, "jobs": len(jobs), "accepted": len(accepted),
        "failed": len(result.failed), "superseded": len(result.superseded),
        "retransmissions": sum(j.retransmissions for j in jobs),
        "failures": _failure_counts(result.failed),
        "seconds": _r(span_s, 3), "bindings_per_s": _r(len(accepted) / span_s, 1),
        "ba_median_ms": _r(statistics.median(lat_ms)) if lat_ms else None,
        "ba_p99_ms": _r(percentile(lat_ms, 0.99)), "by_mechanism": by_mech,
        "unmatched_replies": result.unmatched, "binding_errors": result.binding_errors,
        "bus_sent": bus,
        "load_node_cpu_share": _r(result.driver_cpu_s / max(1e-9, (result.ended_ns - result.started_ns) / 1e9), 2),
    }
    if result.mode == "closed":
        out["window"] = result.window
    else:
        out["offered_per_s"] = result.rate
    if cpu_s is not None:
        out["cn_cpu_s"] = _r(cpu_s, 2)
        out["cn_cpu_per_bu_us"] = _r(cpu_s / bus * 1e6, 1) if bus else None
    return out


def _failure_counts(jobs: list[Job]) -> dict:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.failure] = counts.get(job.failure, 0) + 1
    return counts


def _r(value, digits: int = 3):
    return None if value is None else round(value, digits)


def engine_figures(times: dict[str, list[int]], jobs: int) -> dict:
    """The CN engine's cost per binding from its timed calls (``what`` -> ns): per
    precomputed BU, and per return-routability binding (its BU, CoTI and, as often as the
    run sent one, HoTI), medians in us; the mix weighted as in the run, and the rate it
    bounds (1 / cost)."""
    pre = median_us(times.get("BU", []))
    rr_parts = [median_us(times.get(k, [])) for k in ("BU rr", "CoTI")]
    rr_jobs = len(times.get("BU rr", []))
    hoti = median_us(times.get("HoTI", []))
    rr = None
    if rr_jobs and None not in rr_parts:
        rr = sum(rr_parts) + (hoti or 0) * len(times.get("HoTI", [])) / rr_jobs
    n_pre = len(times.get("BU", []))
    per_binding = None
    if n_pre + rr_jobs:
        per_binding = ((pre or 0) * n_pre + (rr or 0) * rr_jobs) / (n_pre + rr_jobs)
    return {
        "precomputed_bu_median_us": pre, "precomputed_bu_mean_us": mean_us(times.get("BU", [])),
        "rr_bu_median_us": rr_parts[0], "rr_coti_median_us": rr_parts[1], "rr_hoti_median_us": hoti,
        "rr_binding_us": _r(rr, 2), "per_binding_us": _r(per_binding, 2),
        "bound_per_s": _r(1e6 / per_binding, 1) if per_binding else None, "bindings_measured": jobs,
    }


# ---------------------------------------------------------------------- the run


class _Keys:
    """The preconfigured data of the precomputed mobiles, in a 0700 directory on tmpfs."""

    def __init__(self, lab, count: int, rr_share: float, correspondent: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"mip6-loadkeys-{lab.run_id}-", dir=KEY_ROOT))
        lab.state.add_path(self.dir)  # `testbed lab clean` removes it after a crash
        self.peers = {}
        for i in range(count):
            if is_return_routability(i, rr_share):
                continue
            data = generate(HOME_BASE + i, correspondent)
            self.peers[i] = write_new(self.dir / f"mn{i:05d}.yaml", data)
        self.paths = [self.peers[i].source for i in sorted(self.peers)]

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class _CnAgent:
    def __init__(self, lab, settings: LoadSettings, keys: _Keys, label: str) -> None:
        self.lab = lab
        base = Path(tempfile.mkdtemp(prefix=f"cn-{label}-", dir=settings.state_root or lab.run_dir))
        self.base = base
        self.sockets = Path(tempfile.mkdtemp(prefix=f"m6l-{lab.run_id}-"))
        lab.state.add_path(self.sockets)
        self.control = self.sockets / "cn.sock"
        self.event_log = base / "cn.jsonl"
        self.state_dir = base / "state"
        address = lab.addresses.correspondents["cn"]
        self.config = {**settings.cn_options, "role": "cn", "node": "cn", "address": address,
                       "preconfigured_dir": str(keys.dir), "state_dir": str(self.state_dir),
                       "event_log": str(self.event_log), "control_socket": str(self.control)}
        self.config_path = base / "cn.yaml"
        self.config_path.write_text(json.dumps(self.config, indent=1))
        argv = [sys.executable]
        if settings.profile is not None:
            argv += ["-m", "cProfile", "-o", str(settings.profile)]
        argv += ["-m", "testbed.cli", "agent", "--config", str(self.config_path)]
        self.argv = argv
        self.label = label
        self.process = None
        self.pid = 0
        self.spawned_ns = 0

    def start(self) -> None:
        self.spawned_ns = time.monotonic_ns()
        self.process = self.lab.popen("cn", self.argv, tag=f"cn-load-{self.label}")
        self.pid = self.process.pid

    def ctl(self, cmd: str, timeout: float = 30.0, **args) -> dict:
        return request(self.control, {"cmd": cmd, **args}, timeout=timeout)

    def wait_up(self) -> dict:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.process.running():
                raise LabError(f"the CN agent exited with status {self.process.returncode} while starting; "
                               f"see {self.process.log_path}")
            try:
                status = self.ctl("status", timeout=2.0)
                if status.get("ok"):
                    return status
            except OSError:
                pass
            time.sleep(0.01)
        raise LabTimeout(f"the CN agent did not answer on {self.control} within {START_TIMEOUT_S:g} s")

    def startup_s(self) -> float | None:
        for event in read_typed_events(self.event_log):
            if isinstance(event, AgentStarted):
                return round((event.t_ns - self.spawned_ns) / 1e9, 3)
        return None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=30.0)
        shutil.rmtree(self.sockets, ignore_errors=True)


def run_load(lab, settings: LoadSettings, mobiles: int) -> dict:
    """Load figures for ``mobiles`` emulated mobile nodes (see the module docstring)."""
    if not 1 <= mobiles <= 65535:
        raise ConfigError(f"mobiles: {mobiles} is not in 1..65535")
    correspondent = lab.addresses.correspondents["cn"]
    cn_bytes = ipaddress.IPv6Address(correspondent).packed
    keys = _Keys(lab, mobiles, settings.rr_share, correspondent)
    agent = None
    out: dict = {"mobiles": mobiles, "precomputed": len(keys.peers), "rr": mobiles - len(keys.peers)}
    try:
        loading, loaded = key_loading_cost(keys.paths, cn_bytes)
        out["key_loading"] = loading
        cost = EngineCost(dict(zip(sorted(keys.peers), loaded)), cn_bytes, mobiles, settings.moves)
        out["engine_between_driver_steps"] = cost.between_driver_steps
        cost.sample()
        out["engine"] = cost.figures()
        agent = _CnAgent(lab, settings, keys, str(mobiles))
        out["durable_write"] = durable_write_cost(agent.base)  # before the agent starts: nothing competes
        out["state_filesystem"] = filesystem_type(agent.base)
        agent.start()
        status = agent.wait_up()
        out["startup_s"] = agent.startup_s()
        out["persistence"] = status.get("persistence", "unknown")
        if status.get("peers") is not None and status["peers"] != len(keys.peers):
            raise LabError(f"the CN agent loaded {status['peers']} peers, not {len(keys.peers)}")
        fleet = Fleet.build(cn_bytes, mobiles, keys.peers)
        jobs = _drive(lab, agent, fleet, settings, out, cost)
        out["cn_rss_loaded_mib"] = round(rss_bytes(agent.pid) / 2**20, 1)
        out["cn_cpu_per_bu_us"] = _overall_cpu_per_bu(out["phases"])
        out["check"] = check_bindings(agent, fleet, jobs)
        agent.ctl("flush")
        out["agent_turnaround"] = agent_turnaround(read_typed_events(agent.event_log))
        return out
    finally:
        if agent is not None:
            agent.stop()
            if settings.keep_dir is not None:
                settings.keep_dir.mkdir(parents=True, exist_ok=True)
                for name in ("cn.jsonl", "cn.yaml"):
                    if (agent.base / name).exists():
                        shutil.copy2(agent.base / name, settings.keep_dir / f"{mobiles}-{name}")
            shutil.rmtree(agent.base, ignore_errors=True)
        keys.remove()


class EngineCost:
    """The CN engine's cost per binding on the bind and move rounds of the run: driven once
    (the return-routability exchanges need the engine's answers), then replayed alone into
    an engine made alike and timed (``testbed.lab.enginecost``), once per ``sample()``. The
    load run samples it before the agent's phases and again between its moves and its open
    loop, so that the bound and the agent's rate are measured under the same conditions of
    the machine; the figures pool every sample's calls."""

    def __init__(self, peers: dict, cn_bytes: bytes, mobiles: int, moves: int) -> None:
        self.peers = list(peers.values())
        self.cn_bytes = cn_bytes
        self._seed = int.from_bytes(os.urandom(8), "big")
        fleet = Fleet.build(cn_bytes, mobiles, peers)
        transport = EngineTransport(self._engine())
        driver = LoadDriver(fleet, transport, keep_bas=False)
        self.jobs = driver.jobs(range(0, moves + 1))
        driver.prepare(self.jobs)
        result = driver.run(self.jobs, name="engine", window=1, deadline_s=300)
        if result.failed:
            raise LabError(f"the in-process CN engine refused {len(result.failed)} of the run's bindings "
                           f"({result.failed[0].failure})")
        self.sent = transport.sent
        self.between_driver_steps = engine_figures(transport.times_ns, len(self.jobs))
        self.samples: list[dict[str, list[int]]] = []

    def _engine(self) -> CorrespondentNode:  # the same RR key and nonces each time
        return CorrespondentNode(self.cn_bytes, peers=self.peers,
                                 rng=random.Random(self._seed).randbytes)

    def sample(self) -> dict:
        times, accepted = replay_cost(self._engine(), self.sent)
        bus = len(times.get("BU", [])) + len(times.get("BU rr", []))
        if accepted != bus:
            raise LabError(f"the engine replay accepted {accepted} of {bus} BUs: it did not go as the run did")
        self.samples.append(times)
        return engine_figures(times, len(self.jobs))

    def figures(self) -> dict:
        pooled: dict[str, list[int]] = {}
        for times in self.samples:
            for what, values in times.items():
                pooled.setdefault(what, []).extend(values)
        out = engine_figures(pooled, len(self.jobs))
        out["per_binding_us_samples"] = [engine_figures(t, len(self.jobs))["per_binding_us"] for t in self.samples]
        return out


def _drive(lab, agent: _CnAgent, fleet: Fleet, settings: LoadSettings, out: dict, cost: EngineCost) -> list[Job]:
    """The bind, moves and open phases over the link; figures into ``out``; returns every job.
    The engine is sampled again after the closed-loop phases (the agent idle)."""
    mobiles = len(fleet.mobiles)
    link = LinkTransport(lab.node("load").pid, fleet.correspondent)
    phases = out["phases"] = []
    try:
        driver = LoadDriver(fleet, link, ba_timeout_s=settings.ba_timeout_s)
        rss, cpu = rss_bytes(agent.pid), cpu_seconds(agent.pid)
        out["cn_rss_idle_mib"] = round(rss / 2**20, 1)
        plan = [("bind", range(0, 1))]
        if settings.moves:
            plan.append(("moves", range(1, settings.moves + 1)))
        every: list[Job] = []
        for name, rounds_ in plan:
            jobs = driver.jobs(rounds_)
            driver.prepare(jobs)
            result = driver.run(jobs, name=name, window=settings.window)
            cpu_now = cpu_seconds(agent.pid)
            phases.append(phase_figures(result, cpu_now - cpu))
            cpu = cpu_now
            if name == "bind":
                out["memory_per_binding_bytes"] = round((rss_bytes(agent.pid) - rss) / max(1, len(result.accepted)))
            every += jobs
        cost.sample()  # the engine again, the agent idle: both samples pooled
        out["engine"] = cost.figures()
        rate = settings.rate
        if rate is None:  # the goal: half the rate the engine alone allows
            bound = out["engine"]["bound_per_s"]
            rate = round(bound / 2, 1) if bound else 0
        out["open_rate_per_s"] = rate
        if rate:
            count = max(1, round(rate * settings.open_seconds))
            first = settings.moves + 1
            rounds = math.ceil(count / mobiles)
            if first + rounds > MAX_ROUND:
                raise ConfigError(f"open loop: {rounds} rounds of moves do not fit the care-of address plan")
            jobs = driver.jobs(range(first, first + rounds))[:count]
            driver.prepare(jobs)
            result = driver.run(jobs, name="open", rate=rate)
            phases.append(phase_figures(result, cpu_seconds(agent.pid) - cpu))
            every += jobs
        out["load_node_socket_drops"] = link.drops()
        return every
    finally:
        link.close()


def _overall_cpu_per_bu(phases: list[dict]) -> float | None:
    cpu = sum(p.get("cn_cpu_s") or 0 for p in phases)
    bus = sum(p["bus_sent"] for p in phases)
    return round(cpu / bus * 1e6, 1) if bus else None


def check_bindings(agent: _CnAgent, fleet: Fleet, jobs: list[Job]) -> dict:
    """Compare the agent's binding cache with each mobile's last move: the binding must be
    at the care-of address of the mobile's latest job, with a sequence number that job sent
    (its BA may answer an earlier transmission than the last), and that job acknowledged.
    Every BA's authenticator is checked too."""
    latest: dict[bytes, Job] = {}
    for job in jobs:
        prior = latest.get(job.mobile.home)
        if job.started_ns and (prior is None or job.started_ns >= prior.started_ns):
            latest[job.mobile.home] = job
    bindings = {ipaddress.IPv6Address(b["home"]).packed: b for b in agent.ctl("bindings", timeout=60.0)["bindings"]}
    missing = wrong = 0
    examples = []
    for m in fleet.mobiles:
        job = latest.get(m.home)
        got = bindings.get(m.home)
        if job is None or not job.accepted or got is None:
            missing += 1
            if len(examples) < 3:
                why = "never sent a BU" if job is None else (f"last BU not acknowledged ({job.state} {job.failure})"
                                                             if not job.accepted else "no binding")
                examples.append(f"{ipaddress.IPv6Address(m.home)}: {why}")
            continue
        want_coa = str(ipaddress.IPv6Address(job.coa))
        if got["careof"] != want_coa or got["seq"] not in job.sent or got["mechanism"] != m.mechanism:
            wrong += 1
            if len(examples) < 3:
                examples.append(f"{got['home']}: bound to {got['careof']} seq {got['seq']}, "
                                f"expected {want_coa} seq {sorted(job.sent)}")
    bad_bas = sum(1 for j in jobs if j.ba_packet is not None and j.kbm is not None
                  and fleet.check_ba(j.ba_packet, j.kbm, j.coa) is None)
    strays = sum(1 for home in bindings if home not in fleet.by_home)
    return {"mobiles": len(fleet.mobiles), "bound_right": len(fleet.mobiles) - missing - wrong, "lost": missing + wrong,
            "missing": missing, "wrong": wrong, "bad_ba_authenticators": bad_bas, "other_bindings": strays,
            "examples": examples}


def agent_turnaround(events: list[Event]) -> dict:
    """From the agent's event log: per BA sent, kernel receive stamp of its BU -> woke up ->
    BA left (its transmit stamp, or the send returning) (medians and p99 in ms)."""
    total, wake, handling = [], [], []
    for e in events:
        if not isinstance(e, PacketSent) or e.what != "BA":
            continue
        trigger, woke, sent = e.trigger_t_ns, e.woke_t_ns, e.left_ns
        if trigger:
            total.append((sent - trigger) / 1e6)
            if woke and woke >= trigger:
                wake.append((woke - trigger) / 1e6)
                handling.append((sent - woke) / 1e6)
    fig = lambda v: {"median_ms": _r(statistics.median(v)), "p99_ms": _r(percentile(v, 0.99))} if v else None  # noqa: E731
    return {"bas": len(total), "receive_to_ba": fig(total), "receive_to_wakeup": fig(wake),
            "wakeup_to_ba": fig(handling)}
