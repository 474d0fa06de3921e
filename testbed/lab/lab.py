"""``Lab``: one run of an emulated IPv6 network, from bring-up to complete removal.

::

    with Lab("handover", core_ha_delay="50ms") as lab:
        lab.addresses.home_address("mn")          # addressing plan (see topologies/README.md)
        cap = lab.capture("mn", "mn-eth0")         # tcpdump, active when this returns
        agent = lab.popen("mn", [sys.executable, "-m", "...", ...], tag="mn-agent")
        t_move = lab.move("mn", to="ar2")          # layer-2 handover, time.monotonic_ns()
        coa = lab.wait_for_coa("mn", timeout=2)    # usable care-of address on ar2's prefix

Bring-up (``__enter__``): feature probes -> namespaces, bridges, veths (Mininet with
LinuxBridge segments, no controller) -> addresses and routes -> link delay (netem or delay
lines, waiting for each line's ``ready``) -> radvd per advertising node (config rendered,
dry-run checked, pid file awaited) -> every mobile node has a usable address.

Removal (``__exit__``, also after an exception or Ctrl-C during bring-up or the run):
processes started in nodes (reverse order: SIGTERM, deadline, SIGKILL) -> anything else
still inside a node namespace -> ``net.stop()`` -> leftover tagged interfaces -> the
volatile directory and state file (and the run directory if it was temporary). SIGINT is
ignored while this runs. If something could not be removed, the state file stays for
``testbed lab clean`` and a warning says so.

Run directory: ``run_dir`` if given (kept: ``lab.json``, ``conf/``, ``logs/``, pcaps; it
must not already hold a ``lab.json``), else a temporary ``/tmp/mip6-testbed/<run id>``
removed on exit. Volatile files (pid files, ip batches) are in ``<run_dir>/.lab``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mininet.net import Mininet
from mininet.node import Host
from mininet.topo import Topo
from pyroute2 import IPRoute

from testbed.errors import ConfigError
from testbed.lab import delayline, netem
from testbed.lab.addressing import AddressPlan, build_plan
from testbed.lab.build import (
    Built,
    LabBridge,
    LabIntf,
    build_network,
    configure_command,
    ip_batch,
    run_parallel,
)
from testbed.lab.capture import LISTENING, Capture, safe_name, tcpdump_argv
from testbed.lab.cleanup import (
    delete_root_links,
    ignore_sigint,
    kill_and_wait,
    netns_inode,
    processes_in_netns,
    remove_tree,
    tagged_root_links,
)
from testbed.lab.daemons import Radvd, RaInterface
from testbed.lab.errors import LabError, LabTimeout
from testbed.lab.features import (
    DELAY_BACKENDS,
    Feature,
    choose_dad,
    choose_delay_backend,
    choose_ra_intervals,
)
from testbed.lab.naming import new_run_id, tag_of
from testbed.lab.params import Param, parse_params
from testbed.lab.processes import (
    LabProcess,
    mnexec_path,
    popen_in_node,
    stop_all,
    stop_record,
)
from testbed.lab.state import ProcessRecord, RunState, state_dir, ticks_since_boot
from testbed.lab.watch import CareOfAddress, Watcher

log = logging.getLogger("testbed.lab")

DEFAULT_RUN_ROOT = Path("/tmp/mip6-testbed")
LAB_PARAMS: dict[str, Param] = {
    "delay_backend": Param("choice", "auto", "link delay backend (auto: netem if the kernel "
                           "has it, else the user-space delay line)", choices=DELAY_BACKENDS),
}
READY_TIMEOUT_S = 10.0
COA_TIMEOUT_S = 10.0
LINKS_GONE_TIMEOUT_S = 10.0
MOVE_PRIORITY = 10  # Lab.move_all's SCHED_FIFO priority: above every agent, below the pause watchers (50)
_TAG_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def resolve_topology(topology: str | Topo | type, params: dict[str, Any]) -> tuple[Topo, dict, dict]:
    """(topology instance, lab params, raw topology params) from a name, class or instance."""
    from topologies import TOPOLOGIES
    from topologies.base import LabTopo

    lab_raw = {k: v for k, v in params.items() if k in LAB_PARAMS}
    topo_raw = {k: v for k, v in params.items() if k not in LAB_PARAMS}
    if isinstance(topology, str):
        if topology not in TOPOLOGIES:
            raise ConfigError(f"unknown topology {topology!r} (known: {', '.join(TOPOLOGIES)})")
        topology = TOPOLOGIES[topology]
    if isinstance(topology, type) and issubclass(topology, LabTopo):
        specs = {**topology.param_specs(), **LAB_PARAMS}
        parse_params(specs, params, f"topology {topology.NAME!r}")  # one message for all names
        topo = topology(**topo_raw)
    elif isinstance(topology, Topo):
        if topo_raw:
            raise ConfigError(f"topology instance given: parameter {min(topo_raw)!r} must be "
                              f"passed to the topology itself (lab parameters: {', '.join(LAB_PARAMS)})")
        topo = topology
    else:
        raise ConfigError(f"{topology!r} is not a topology name, LabTopo class or Topo instance")
    lab_params = parse_params(LAB_PARAMS, lab_raw, "lab")
    return topo, lab_params, topo_raw


class Lab:
    """An emulated network run (see the module docstring)."""

    def __init__(self, topology: str | Topo | type = "handover", run_dir: str | Path | None = None,
                 **params: Any) -> None:
        self.topo, self.lab_params, self._topo_raw = resolve_topology(topology, params)
        self.params: dict[str, Any] = {**getattr(self.topo, "params", {}), **self.lab_params}
        self.addresses: AddressPlan = build_plan(self.topo)
        # Absolute once, here: every path handed to a node process (agents, delay lines,
        # tcpdump, radvd) derives from it, and those resolve relative paths elsewhere.
        self._requested_run_dir = Path(os.path.abspath(run_dir)) if run_dir is not None else None
        self.run_id: str = ""
        self.tag: str = ""
        self.run_dir: Path = Path()
        self.volatile_dir: Path = Path()
        self.features: list[Feature] = []
        self.delay_backend: str = ""
        self.net: Mininet | None = None
        self.state: RunState | None = None
        self._built: Built | None = None
        self._processes: list[LabProcess] = []
        self._captures: list[Capture] = []
        self._watcher: Watcher | None = None
        self._ipr: IPRoute | None = None
        self._netns_inodes: set[int] = set()
        self._close_ticks: int | None = None  # when close() began (state.ticks_since_boot)
        self._moves: dict[str, tuple[int, str]] = {}  # mn -> (t_ns of last move, segment)
        self._location: dict[str, str] = {}  # mn -> segment name
        self._closed = False
        self._started = False
        self.timings: dict[str, float] = {}

    # -- life cycle -----------------------------------------------------------------------

    def __enter__(self) -> Lab:  # noqa: PYI034 - subclasses are not expected
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def start(self) -> Lab:
        if self._started:
            raise LabError("this Lab was already started (use a new Lab for a new run)")
        self._started = True
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        t0 = time.monotonic()
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, veths, bridges)")
        mnexec_path()
        for tool in ("ip", "sysctl", "radvd", "unshare"):
            if shutil.which(tool) is None:
                raise LabError(f"{tool} not found on PATH (the lab needs it)")
        self._create_run()
        self._choose_features()
        if self.delay_backend == "delayline" and shutil.which("ethtool") is None:
            raise LabError("ethtool not found on PATH (the delay line needs offloads off)")
        self.timings["probe"] = time.monotonic() - t0

        Mininet.inited = True  # skip Mininet.init(): its fixLimits() changes host sysctls
        self.net = Mininet(topo=None, build=False, controller=None, switch=LabBridge, host=Host,
                           intf=LabIntf, autoSetMacs=False, waitConnected=False)
        self._built = build_network(self.net, self.addresses, self.run_id, self.delay_backend,
                                    optimistic=self._optimistic, on_shell=self._record_shell,
                                    on_bridge=self._record_bridge)
        self.net.built = True
        self._record_namespaces()
        self.net.start()
        self._ipr = IPRoute()
        self._location = {mn: m.first_segment for mn, m in self.addresses.mobiles.items()}
        self.timings["build"] = time.monotonic() - t0

        self._configure_nodes()
        self._start_delay()
        self.timings["links"] = time.monotonic() - t0
        self._start_radvd()
        self._watcher = Watcher()
        for mn in self.addresses.mobiles:
            self._watcher.watch(mn, self.node(mn).pid)
        for mn in self.addresses.mobiles:
            self.wait_for_coa(mn, require_ra=False, timeout=COA_TIMEOUT_S)
        self._write_lab_json()
        self.timings["up"] = time.monotonic() - t0
        log.info("lab %s (%s) up in %.2f s, run directory %s", self.run_id, self.addresses.topology,
                 self.timings["up"], self.run_dir)

    def _create_run(self) -> None:
        for _ in range(20):
            run_id = new_run_id()
            if (state_dir() / f"{run_id}.json").exists() or tagged_root_links({run_id}):
                continue
            temporary = self._requested_run_dir is None
            run_dir = DEFAULT_RUN_ROOT / run_id if temporary else self._requested_run_dir
            if not temporary and (run_dir / "lab.json").exists():
                raise ConfigError(f"run directory {run_dir} already holds a lab run (lab.json); "
                                  f"choose another one")
            if temporary and run_dir.exists():
                continue
            try:
                self.state = RunState.create(run_id, run_dir, temporary, run_dir / ".lab")
            except FileExistsError:
                continue
            break
        else:
            raise LabError("could not find a free run id")
        self.run_id, self.tag, self.run_dir = run_id, tag_of(run_id), run_dir
        for sub in ("", "conf", "logs", ".lab"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        self.volatile_dir = run_dir / ".lab"

    def _choose_features(self) -> None:
        backend = choose_delay_backend(self.lab_params["delay_backend"])
        self.delay_backend = "netem" if backend.chosen == "netem" else "delayline"
        user_set = any(k in self._topo_raw for k in ("ra_min_interval", "ra_max_interval", "ra_min_delay"))
        ra, self.ra_intervals = choose_ra_intervals(
            self.params["ra_min_interval"], self.params["ra_max_interval"],
            self.params["ra_min_delay"], user_set)
        dad = choose_dad()
        self._optimistic = dad.missing is None
        self.features = [backend, ra, dad]
        for feature in self.features:
            feature.report()

    def _record_shell(self, name: str, pid: int, in_namespace: bool = True) -> None:
        assert self.state is not None
        self.state.add_shell(ProcessRecord.of(pid, name, "shell", "bash"))

    def _record_namespaces(self) -> None:
        """Remember the network namespace of every node (once its shell is inside it)."""
        assert self.net is not None
        root = netns_inode(os.getpid())
        for host in self.net.hosts:
            inode = netns_inode(host.pid)
            if inode is None or inode == root:
                raise LabError(f"node {host.name} (pid {host.pid}) is not in its own network namespace")
            self._netns_inodes.add(inode)

    def _record_bridge(self, name: str) -> None:
        assert self.state is not None
        self.state.add_bridge(name)

    def _configure_nodes(self) -> None:
        assert self.net is not None and self._built is not None
        extra: dict[str, list[str]] = {}  # Mininet node -> shell commands after its ip batch
        for dl in self._built.delayed:
            for node, intf in dl.ends:
                if self.delay_backend == "delayline":
                    cmd = f"ethtool -K {intf} tx off tso off gso off >/dev/null"
                else:
                    cmd = " ".join(netem.netem_argv(intf, dl.link.delay_ms))
                extra.setdefault(node, []).append(cmd)
        delays = [link.delay_ms for link in self.addresses.links]
        retrans_ms = max(100, math.ceil(2.5 * max([0.0] + delays)))
        commands = []
        for host in self.net.hosts:
            cmd = configure_command(host, ip_batch(self.addresses, self._built, host.name),
                                    self.volatile_dir,
                                    None if host.name in self._built.wires else retrans_ms)
            commands.append((host, " && ".join([cmd] + extra.pop(host.name, []))))
        # what is left: root-namespace ends (bridge ports), run in the bridges' shells
        commands += [(self.net[node], " && ".join(cmds)) for node, cmds in extra.items()]
        run_parallel(commands, "configure")

    def _start_delay(self) -> None:
        assert self._built is not None
        if self.delay_backend != "delayline":
            return
        lines = []
        for dl in self._built.delayed:
            assert dl.wire and dl.wire_intfs
            argv = delayline.delayline_argv(dl.wire_intfs[0], dl.wire_intfs[1], dl.link.delay_ms,
                                            tag=self.run_id)
            lines.append(self.popen(dl.wire, argv, tag="delayline", stdout=subprocess.PIPE))
        for proc in lines:
            proc.wait_for_line(r"^ready$", timeout=READY_TIMEOUT_S)

    def _start_radvd(self) -> None:
        per_node: dict[str, list[RaInterface]] = {}
        for node in self.addresses.nodes.values():
            for intf in node.interfaces.values():
                if intf.ra and not intf.silent:
                    per_node.setdefault(node.name, []).append(
                        RaInterface(intf.name, intf.subnet, intf.home))
        lo, hi, gap = self.ra_intervals
        started = []
        for node, intfs in per_node.items():
            daemon = Radvd(node, self.run_dir / "conf", self.run_dir / "logs", self.volatile_dir,
                           interfaces=intfs, min_interval=lo, max_interval=hi, min_delay=gap)
            daemon.write()
            daemon.dry_run()
            with open(daemon.log_path, "ab") as logf:
                proc = self.popen(node, daemon.start_argv(), tag="radvd",
                                  stdout=subprocess.DEVNULL, stderr=logf)
            started.append((daemon, proc))
        deadline = time.monotonic() + READY_TIMEOUT_S
        for daemon, proc in started:
            _poll_until(lambda d=daemon, p=proc: d.started(p.pid) or not p.running(), deadline,
                        f"radvd on {daemon.node} did not write its pid file {daemon.pid_path}")
            if not proc.running():
                raise LabError(f"radvd on {daemon.node} exited with status {proc.returncode} "
                               f"(log {daemon.log_path})")

    def _write_lab_json(self) -> None:
        data = {
            "run_id": self.run_id,
            "topology": self.addresses.topology,
            "params": self.params,
            "features": [f.__dict__ for f in self.features],
            "delay_backend": self.delay_backend,
            "bridges": {seg: self._built.node_names[seg] for seg in self.addresses.segments},
            "addresses": self.addresses.to_dict(),
        }
        (self.run_dir / "lab.json").write_text(json.dumps(data, indent=1, default=str))

    def close(self) -> None:
        """Remove everything of this run (idempotent; see the module docstring)."""
        if self._closed:
            return
        self._closed = True
        self._close_ticks = ticks_since_boot()
        restore = ignore_sigint()
        problems: list[str] = []

        def step(what: str, fn) -> None:
            t = time.monotonic()
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - keep cleaning, report at the end
                problems.append(f"{what}: {exc}")
                log.warning("lab %s clean-up: %s failed: %s", self.run_id, what, exc)
            self.timings[f"close: {what}"] = self.timings.get(f"close: {what}", 0) + time.monotonic() - t

        try:
            step("stopping processes", lambda: stop_all(list(reversed(self._processes))))
            if self._watcher is not None:
                step("closing the watcher", self._watcher.close)
            if self._ipr is not None:
                step("closing netlink", self._ipr.close)
            step("killing processes left in node namespaces", self._kill_namespace_leftovers)
            if self.net is not None:
                step("stopping Mininet", self.net.stop)
            if self.state is not None:
                step("stopping node shells", self._stop_shells)
                step("removing tagged interfaces", self._remove_links)
                leftovers = self._leftovers()
                if leftovers:
                    log.warning("lab %s: could not remove %s; state file %s kept for "
                                "'testbed lab clean'", self.run_id, ", ".join(leftovers),
                                self.state.path)
                else:
                    remove_tree(self.volatile_dir)
                    if self.state.run_dir_is_temporary:
                        remove_tree(self.run_dir)
                    self.state.remove()
        finally:
            restore()

    def _kill_namespace_leftovers(self) -> None:
        assert self.state is not None or not self._netns_inodes
        shells = {s.pid for s in self.state.shells} if self.state else set()
        pids = processes_in_netns(self._netns_inodes, exclude=shells | {os.getpid()})
        for pid in pids:
            log.info("lab %s: killing pid %d left in a node namespace", self.run_id, pid)
        kill_and_wait(pids)  # what would not go is reported by _leftovers

    def _stop_shells(self) -> None:
        """Mininet terminated them; this catches any it could not (e.g. net.stop() failed)."""
        assert self.state is not None
        for record in self.state.shells:
            if record.alive():
                stop_record(record, timeout=2.0, first_signal=signal.SIGHUP)

    def _remove_links(self) -> None:
        """Bridges and ports go with their namespaces (asynchronously): wait for that, then
        delete whatever is left."""
        deadline = time.monotonic() + LINKS_GONE_TIMEOUT_S
        _poll_until(lambda: not tagged_root_links({self.run_id}) or time.monotonic() >= deadline,
                    deadline + 1, "")
        failed = delete_root_links(tagged_root_links({self.run_id}))
        if failed:
            raise LabError("could not delete " + ", ".join(failed))

    def _leftovers(self) -> list[str]:
        assert self.state is not None
        left = [f"interface {name}" for _, name in tagged_root_links({self.run_id})]
        left += [f"process {p.pid} ({p.tag} on {p.node})" for p in self.state.processes if p.alive()]
        left += [f"shell {p.pid} ({p.node})" for p in self.state.shells if p.alive()]
        # our namespaces may be gone by now and their inode numbers given to another run's
        left += [f"process {pid} in a node namespace"
                 for pid in processes_in_netns(self._netns_inodes, exclude={os.getpid()},
                                               started_before=self._close_ticks)]
        return left

    # -- nodes and processes --------------------------------------------------------------

    def node(self, name: str):
        """The Mininet node (``mininet.node.Host``) of a plan node, or a segment's bridge node."""
        self._require_running()
        assert self.net is not None and self._built is not None
        mininet_name = self._built.node_names.get(name, name)
        if mininet_name not in self.net.nameToNode:
            raise ConfigError(f"no node {name!r} in this lab (nodes: "
                              f"{', '.join(self._built.node_names)})")
        return self.net[mininet_name]

    def popen(self, node_name: str, argv: Sequence[str], *, tag: str, stdout: Any = None,
              stderr: Any = None, env: dict[str, str] | None = None,
              cwd: str | None = None, stdin: Any = subprocess.DEVNULL) -> LabProcess:
        """Start ``argv`` inside node ``node_name``; it is stopped when the lab closes.

        ``tag`` names the process in logs and the state file (letters, digits, ``_.-``).
        ``stdout``/``stderr``: as for subprocess.Popen; by default both go to
        ``<run_dir>/logs/<node>-<tag>.log``. ``stdin``: nothing by default (``subprocess.PIPE``
        for a process driven by commands). ``env``: variables added to the environment.
        """
        if not _TAG_RE.match(tag):
            raise ConfigError(f"process tag {tag!r} must be 1-40 letters, digits, '_', '.', '-'")
        if not argv:
            raise ConfigError("popen: empty argv")
        node = self.node(node_name)
        log_path = None
        opened = None
        if stdout is None or stderr is None:
            log_path = self.run_dir / "logs" / f"{node_name}-{tag}.log"
            opened = open(log_path, "ab")  # noqa: SIM115 - closed below, once Popen has it
            stdout = opened if stdout is None else stdout
            stderr = (subprocess.STDOUT if stdout is opened else opened) if stderr is None else stderr
        try:
            popen = popen_in_node(node.pid, list(argv), stdout=stdout, stderr=stderr, env=env, cwd=cwd,
                                  stdin=stdin)
        finally:
            if opened is not None:
                opened.close()
        proc = LabProcess(node_name, tag, argv, popen, log_path, on_exit=self._forget)
        self._processes.append(proc)
        assert self.state is not None
        self.state.add_process(proc.record)
        return proc

    def run(self, node_name: str, argv: Sequence[str], *, timeout: float = 30.0,
            tag: str = "run", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``argv`` in a node to completion; returns its status and output (text).
        LabTimeout (and the process stopped) if it takes longer than ``timeout`` s."""
        proc = self.popen(node_name, argv, tag=tag, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env)
        try:
            out, err = proc.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabTimeout(f"{argv[0]} on {node_name} did not finish within {timeout:g} s") from None
        finally:
            proc.stop()
        return subprocess.CompletedProcess(list(argv), proc.returncode, out.decode(errors="replace"),
                                           err.decode(errors="replace"))

    def _forget(self, proc: LabProcess) -> None:
        if proc in self._processes:
            self._processes.remove(proc)
        if self.state is not None and not self._closed:
            self.state.drop_process(proc.pid)

    @property
    def processes(self) -> list[LabProcess]:
        return list(self._processes)

    @property
    def captures(self) -> list[Capture]:
        return list(self._captures)

    # -- handover -------------------------------------------------------------------------

    def location(self, mn: str = "mn") -> str:
        """The segment mobile node ``mn`` is attached to now."""
        self.addresses.mobile(mn)
        return self._location[mn]

    def move(self, mn: str = "mn", to: str = "ar2") -> int:
        """Move ``mn``'s link to the segment of ``to`` (a segment or its router, e.g. ``ar2``,
        ``a2``, ``home``) by re-enslaving its bridge port. Returns ``time.monotonic_ns()``
        read just before the port joins the new bridge: nothing from the new segment can reach
        the MN earlier, so no event of the move precedes it (a stamp read after the netlink call
        could, when the host pauses this process's CPU and not the MN's). No carrier change
        reaches the MN."""
        self._require_running()
        assert self._ipr is not None and self._built is not None
        self.addresses.mobile(mn)
        segment = self.addresses.segment(to)
        port = self._built.attachments[mn]
        bridge = self._built.node_names[segment.name]
        port_index = _one(self._ipr.link_lookup(ifname=port), port)
        bridge_index = _one(self._ipr.link_lookup(ifname=bridge), bridge)
        self._ipr.link("set", index=port_index, master=0)
        t_ns = time.monotonic_ns()
        self._ipr.link("set", index=port_index, master=bridge_index)
        self._moves[mn] = (t_ns, segment.name)
        self._location[mn] = segment.name
        return t_ns

    def move_all(self, mobiles: Sequence[str], to: str) -> dict[str, int]:
        """Move every one of ``mobiles`` to the segment of ``to`` at once (as ``move`` does each):
        the interface indexes are looked up first (one dump of the root namespace's links, not
        one per MN: with hundreds of interfaces a lookup costs milliseconds), then every port
        leaves its bridge and joins the new one, back to back. Returns each MN's
        ``time.monotonic_ns()`` read just before its port joined the new bridge. Meanwhile this
        thread runs at real-time priority MOVE_PRIORITY (where allowed): the MNs that moved
        first start signalling at once, and a hundred agents would otherwise spread the
        moves over seconds."""
        self._require_running()
        assert self._ipr is not None and self._built is not None
        segment = self.addresses.segment(to)
        for mn in mobiles:
            self.addresses.mobile(mn)
        index = {link.get_attr("IFLA_IFNAME"): link["index"] for link in self._ipr.get_links()}
        bridge = self._built.node_names[segment.name]
        bridge_index = _one([index[bridge]] if bridge in index else [], bridge)
        ports = {mn: _one([index[p]] if (p := self._built.attachments[mn]) in index else [], p) for mn in mobiles}
        moved = {}
        with _realtime_briefly():
            for port_index in ports.values():
                self._ipr.link("set", index=port_index, master=0)
            for mn, port_index in ports.items():
                moved[mn] = time.monotonic_ns()
                self._ipr.link("set", index=port_index, master=bridge_index)
        for mn, t_ns in moved.items():
            self._moves[mn] = (t_ns, segment.name)
            self._location[mn] = segment.name
        return moved

    def last_move_ns(self, mn: str = "mn") -> int | None:
        """``time.monotonic_ns()`` of ``mn``'s last move (None before the first)."""
        self.addresses.mobile(mn)
        last = self._moves.get(mn)
        return None if last is None else last[0]

    def wait_for_coa(self, mn: str = "mn", prefix: str | None = None, *,
                     since_ns: int | None = None, require_ra: bool | None = None,
                     timeout: float = 2.0) -> CareOfAddress:
        """Wait until ``mn`` has a usable address on ``prefix`` (default: the prefix of the
        segment it is on). After a move (``since_ns`` defaults to the last move's time) it
        must also have heard an RA carrying that prefix since then; ``usable_ns`` is when
        both held. Raises LabTimeout after ``timeout`` seconds."""
        self._require_running(allow_starting=True)
        assert self._watcher is not None
        self.addresses.mobile(mn)
        if prefix is None:
            prefix = self.addresses.segments[self._location[mn]].subnet
        if since_ns is None and mn in self._moves:
            since_ns = self._moves[mn][0]
        if require_ra is None:
            require_ra = since_ns is not None
        return self._watcher.watches[mn].wait_for_coa(prefix, since_ns=since_ns,
                                                      require_ra=require_ra, timeout=timeout)

    def usable_addresses(self, mn: str = "mn", prefix: str | None = None) -> list[str]:
        """The usable global and link-local addresses of ``mn`` (on ``prefix`` if given)."""
        self._require_running()
        assert self._watcher is not None
        return self._watcher.watches[mn].usable_addresses(prefix)

    def forget_addresses(self, mn: str, prefix: str) -> None:
        """Delete ``mn``'s addresses on ``prefix`` (e.g. the CoA of a link it left)."""
        intf = self.addresses.mobile(mn).intf
        for addr in self.usable_addresses(mn, prefix):
            self.node(mn).cmd(f"ip -6 addr del {addr}/64 dev {intf}")

    # -- captures -------------------------------------------------------------------------

    def capture(self, node: str, intf: str | None = None, *, bpf: str | None = None,
                timeout: float = 5.0) -> Capture:
        """Start tcpdump on ``intf`` of ``node`` into ``<run_dir>/<node>-<intf>.pcap``;
        returns once tcpdump is capturing. ``node`` may be a segment (then ``intf``
        defaults to its bridge). Stopped on exit, or by ``Capture.stop()``."""
        self._require_running()
        assert self._built is not None
        if intf is None:
            if node not in self.addresses.segments:
                raise ConfigError(f"capture on {node!r}: name an interface")
            intf = self._built.node_names[node]
        if not safe_name(node) or not safe_name(intf):
            raise ConfigError(f"capture: bad node or interface name {node!r}/{intf!r}")
        path = self.run_dir / f"{node}-{intf}.pcap"
        if path.exists():
            raise ConfigError(f"capture: {path} exists already (one capture per interface)")
        if shutil.which("tcpdump") is None:
            raise LabError("tcpdump not found on PATH (install the package 'tcpdump')")
        log_path = self.run_dir / "logs" / f"{node}-tcpdump-{intf}.log"
        with open(log_path, "ab") as logf:
            proc = self.popen(node, tcpdump_argv(intf, path, bpf), tag=f"tcpdump-{intf}",
                              stdout=logf, stderr=subprocess.PIPE)
        proc.wait_for_line(LISTENING, stream="stderr", timeout=timeout)
        cap = Capture(node, intf, path, proc, log_path)
        self._captures.append(cap)
        return cap

    # -- misc -----------------------------------------------------------------------------

    def cli(self) -> None:
        """Mininet's interactive CLI on this lab (blocks until the user exits it)."""
        from mininet.cli import CLI

        self._require_running()
        CLI(self.net)

    def describe(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "lab.json").read_text())

    def _require_running(self, allow_starting: bool = False) -> None:
        if self._closed:
            raise LabError("the lab is closed")
        if self.net is None and not allow_starting:
            raise LabError("the lab is not started (use 'with Lab(...) as lab:')")


class _realtime_briefly:
    """This thread at SCHED_FIFO priority MOVE_PRIORITY for a short loop (below the pause
    watchers'); nothing changes where that is not allowed."""

    def __enter__(self) -> None:
        self.old = None
        try:
            self.old = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(MOVE_PRIORITY))
        except (OSError, AttributeError):
            self.old = None

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            os.sched_setscheduler(0, self.old[0], self.old[1])


def _one(indexes: list[int], name: str) -> int:
    if not indexes:
        raise LabError(f"interface {name} not found in the root namespace")
    return indexes[0]


def _poll_until(condition, deadline: float, message: str) -> None:
    delay = 0.001
    while not condition():
        if time.monotonic() >= deadline:
            raise LabTimeout(message)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
