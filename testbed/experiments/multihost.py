"""The handover experiment on machines of an inventory instead of a Mininet lab (the "hosts"
backend; docs/multihost.md).

The inventory is an ordinary Ansible one (``playbooks/inventory/multihost.yml`` for the Vagrant
profile, ``ssh.example.yml`` for the format): one host in each of ``mip6_mn``, ``mip6_cn``,
``mip6_ha``; the MN has ``mip6_access`` (access router -> the NIC on its network, two of them)
and every host ``mip6_testbed_argv`` (how to run ``testbed`` there). Per mechanism:

1. the keys are made on the controller and pushed with ``playbooks/keys.yml`` (the agents'
   configurations with them), as for a lab;
2. over SSH: captures (tcpdump to our end of the connection) on all the MN's NICs (``any``:
   a capture on one NIC ends when it goes down; SSH left out) and the CN's ``mip6_capture`` NIC, the HA, CN and MN agents (``testbed agent``), and the MN's
   event log streamed back as the agent writes it;
3. the MN binds, the CN streams probes to its home address; each move takes the NIC in use
   down and brings the other up (one command on the MN, which stamps the move on the MN's
   clock); a move is complete when the MN's log shows both BAs and the first route-optimised
   probe, then the CN's binding is checked through its control socket;
4. the event logs and agent logs are fetched, the remote run directory removed.

The result is the lab's ``MechanismResult``, so the experiment writes the same results layout.
Times: every point of the MN (move, RA, usable CoA, BAs) is on the MN's monotonic clock; the
CN's and HA's points are on theirs, and captures are mapped to each machine's monotonic clock
with that machine's own realtime offset. Differences across machines (the network phases of
the timeline) are only meaningful where the clocks agree: on one machine (CI, namespaces) or
with synchronised clocks (PTP); the usable-CoA-to-BA figure is the MN's alone.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from testbed.agent.eventlog import read_typed_events
from testbed.agent.events import ProbeReceived, RaNewPrefix
from testbed.diag.verify import KeyRing
from testbed.errors import ConfigError, TestbedError
from testbed.experiments.sshhost import Held, SshHost
from testbed.lab.handover_check import (BIND_TIMEOUT_S, MOVE_INTERVAL_NS, MOVE_TIMEOUT_S, PROBE_RATE, PROBE_WAIT_S,
                                        POLL_S, WARM_UP_MOVES, EventTail, MechanismResult, MoveResult, _read_capture)
from testbed.mip6.events import CnRegistered, CoaUsable, HomeRegistered
from testbed.provision.api import push_keys
from testbed.provision.inventory import Inventory, load_inventory
from testbed.provision.keyset import generate_keyset

DEFAULT_RUN_ROOT = "/var/tmp/mip6-testbed"
AGENT_START_TIMEOUT_S = 20.0
CAPTURE_START_TIMEOUT_S = 10.0
# Printed by the MN for a move: the NIC in use down, monotonic stamp, the other NIC up.
MOVE_SCRIPT = ("import subprocess, sys, time\n"
               "subprocess.run(['ip', 'link', 'set', 'dev', sys.argv[1], 'down'], check=True)\n"
               "t = time.monotonic_ns()\n"
               "subprocess.run(['ip', 'link', 'set', 'dev', sys.argv[2], 'up'], check=True)\n"
               "print(t, time.time_ns() - time.monotonic_ns())\n")
CLOCK_SCRIPT = "import time; print(time.monotonic_ns(), time.time_ns() - time.monotonic_ns())"

Progress = Callable[..., None]


class HostsPlan:
    """The inventory's machines for one experiment: roles, addresses, NICs, how to run testbed."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        names = {"mn": list(inventory.mobiles), "cn": list(inventory.correspondents), "ha": list(inventory.home_agents)}
        for role, hosts in names.items():
            if len(hosts) != 1:
                raise ConfigError(f"inventory {inventory.source}: the hosts backend needs exactly one host in "
                                  f"mip6_{role}, found {len(hosts)}")
        self.names = {role: hosts[0] for role, hosts in names.items()}
        self.hosts = {role: SshHost(name, inventory.hosts_vars[name]) for role, name in self.names.items()}
        mn_vars = inventory.hosts_vars[self.names["mn"]]
        access = mn_vars.get("mip6_access")
        if not isinstance(access, dict) or len(access) != 2:
            raise ConfigError(f"inventory host {self.names['mn']}: mip6_access must map two access routers to the "
                              "MN's NIC on each network, e.g. {ar1: a1, ar2: a2}")
        self.access = {str(ar): str(nic) for ar, nic in access.items()}
        self.home_address, self.home_agent = inventory.mobiles[self.names["mn"]]
        self.cn_address = inventory.correspondents[self.names["cn"]]
        prefix = mn_vars.get("mip6_home_prefix")
        try:
            self.home_prefix = str(ipaddress.IPv6Network(str(prefix)))
        except ValueError:
            raise ConfigError(f"inventory host {self.names['mn']}: mip6_home_prefix {prefix!r} is not an IPv6 "
                              "prefix") from None
        for role, host in self.hosts.items():
            argv = host.vars.get("mip6_testbed_argv")
            if not isinstance(argv, list) or not argv:
                raise ConfigError(f"inventory host {host.name}: mip6_testbed_argv (how to run testbed there, "
                                  "a list) is missing")
        cn_vars = inventory.hosts_vars[self.names["cn"]]
        self.cn_capture = str(cn_vars.get("mip6_capture") or "")
        if not self.cn_capture:
            raise ConfigError(f"inventory host {self.names['cn']}: mip6_capture (the NIC to capture on) is missing")

    @classmethod
    def load(cls, path: str | Path) -> HostsPlan:
        return cls(load_inventory(path))

    def testbed(self, role: str) -> list[str]:
        return [str(a) for a in self.hosts[role].vars["mip6_testbed_argv"]]

    def python(self, role: str) -> str:
        return str(self.hosts[role].vars.get("ansible_python_interpreter") or "python3")


class HostsBackend:
    """``run_handover_experiment(..., backend=HostsBackend(path))``: each mechanism on the machines."""

    name = "hosts"

    def __init__(self, inventory: str | Path) -> None:
        self.plan = HostsPlan.load(inventory)
        self.pushes: dict[str, list] = {}
        self.shared_clock: dict[str, bool] = {}  # mechanism -> the machines run on this one's clock

    def pauses_apply(self, mechanism: str) -> bool:
        """Whether this machine's pause monitor speaks for the machines' times: only when they
        share its monotonic clock (namespaces of this machine, as in CI)."""
        return self.shared_clock.get(mechanism, False)

    def installer(self, mechanism: str, record: Path | None):
        return _Pushes(self.pushes.setdefault(mechanism, []), record)

    def run(self, mechanism: str, *, moves: int, run_dir: Path, keys, progress: Progress | None = None,
            params: dict | None = None, persistence: str | dict | None = None) -> MechanismResult:
        result = MechanismResult(mechanism, run_dir=str(run_dir))
        result.delay_backend = "hosts (the machines' own network)"
        result.params = dict(params or {})
        tell = progress or (lambda kind, **info: None)
        run = HostsRun(self.plan, mechanism, run_dir, keys, persistence)
        try:
            run.run(result, moves, tell)
        except KeyboardInterrupt:
            result.interrupted = True
        self.shared_clock[mechanism] = bool(run.shared) and all(run.shared.values())
        return result


class _Pushes:
    """What the experiment reads of a key installer (``pushes``, each with ``seconds``)."""

    def __init__(self, pushes: list, record: Path | None) -> None:
        self.pushes = pushes
        self.record = record


class HostsRun:
    def __init__(self, plan: HostsPlan, mechanism: str, run_dir: Path, keys: _Pushes,
                 persistence: str | dict | None = None) -> None:
        self.plan = plan
        self.persistence = persistence
        self.mechanism = mechanism
        self.run_dir = run_dir
        self.keys = keys
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{mechanism}"
        root = str(plan.hosts["mn"].vars.get("mip6_run_root") or DEFAULT_RUN_ROOT)
        self.remote_dirs = {role: f"{root}/{self.run_id}/{role}" for role in plan.hosts}
        self.held: list[Held] = []
        self.agents: dict[str, Held] = {}
        self.location = ""
        self.last_move_ns: int | None = None
        self.offsets: dict[str, list[tuple[int, int]]] = {role: [] for role in plan.hosts}
        self.shared: dict[str, bool] = {}  # role -> its monotonic clock is this machine's
        self.events_dir = run_dir / "events" / mechanism  # where a lab's agents write theirs (LabAgents)

    # ------------------------------------------------------------------ set-up

    def configs(self) -> dict[str, dict]:
        p = self.plan
        configs = {"ha": {"role": "ha", "address": p.home_agent, "home_prefix": p.home_prefix},
                   "cn": {"role": "cn", "address": p.cn_address},
                   "mn": {"role": "mn", "interfaces": list(p.access.values()), "home_address": p.home_address,
                          "home_agent": p.home_agent, "home_prefix": p.home_prefix,
                          "correspondents": [p.cn_address]}}
        if self.mechanism == "rr-scratch":
            configs["mn"]["home_token_reuse"] = False
        for role, config in configs.items():
            d = self.remote_dirs[role]
            config.update({"node": role, "state_dir": f"{d}/state", "event_log": f"{d}/events.jsonl",
                           "control_socket": f"{d}/ctl.sock"})
            if self.persistence is not None:
                config["persistence"] = self.persistence
        return configs

    def push(self, configs: dict[str, dict]):
        """Keys made here, checked, pushed with keys.yml with the agents' configurations."""
        p = self.plan
        pairs = [(p.names["mn"], p.names["cn"])] if self.mechanism == "precomputed" else []
        inventory = p.inventory.select(pairs)
        keyset = generate_keyset(inventory.peers())
        record = None if self.keys.record is None else self.keys.record / f"{len(self.keys.pushes) + 1:02d}-keys"
        result = push_keys(inventory, keyset, agents={p.names[role]: c for role, c in configs.items()},
                           reload=False, record=record)
        self.keys.pushes.append(result)
        return keyset

    def ctl(self, role: str, cmd: str, *args: str, timeout: float = 15.0) -> dict:
        sock = self.configs()[role]["control_socket"]
        done = self.plan.hosts[role].run([*self.plan.testbed(role), "agent-ctl", sock, cmd, *args], timeout=timeout,
                                         check=False)
        try:
            return json.loads(done.stdout.decode(errors="replace"))
        except json.JSONDecodeError:
            return {"ok": False, "error": " ".join(done.stderr.decode(errors="replace").split())[-200:]}

    def start_agent(self, role: str, config_path: str) -> None:
        host = self.plan.hosts[role]
        self.agents[role] = held = host.hold([*self.plan.testbed(role), "agent", "--config", config_path],
                                             stdout=subprocess.DEVNULL, log=f"{self.remote_dirs[role]}/agent.log")
        self.held.append(held)
        deadline = time.monotonic() + AGENT_START_TIMEOUT_S
        while True:
            if not held.running():
                raise TestbedError(f"the agent on {host.name} exited; see {self.run_dir}/logs/{role}-agent.log")
            if self.ctl(role, "status").get("ok"):
                return
            if time.monotonic() >= deadline:
                raise TestbedError(f"the agent on {host.name} did not answer within {AGENT_START_TIMEOUT_S:g} s")
            time.sleep(0.1)

    def capture(self, role: str, intf: str, bpf: str = "ip6") -> Path:
        path = self.run_dir / f"{role}-{intf}.pcap"
        out = open(path, "wb")  # noqa: SIM115 - handed to ssh, closed once it ends
        try:
            held = self.plan.hosts[role].hold(["tcpdump", "-i", intf, "-w", "-", "-U", "-n", "-Z", "root",
                                               "--immediate-mode", "-s", "0", "--time-stamp-precision", "nano",
                                               bpf], stdout=out, signal="INT")
        finally:
            out.close()
        self.held.append(held)
        if not held.read_stderr_until("listening on", CAPTURE_START_TIMEOUT_S):
            raise TestbedError(f"tcpdump on {self.plan.hosts[role].name} {intf} did not start: "
                               + " ".join(" ".join(held.stderr).split())[-200:])
        return path

    def clock(self, role: str) -> None:
        before = time.monotonic_ns()
        out = self.plan.hosts[role].text([self.plan.python(role), "-c", CLOCK_SCRIPT]).split()
        after = time.monotonic_ns()
        self.offsets[role].append((int(out[0]), int(out[1])))
        # the same clock when its reading falls within our call (another machine's is off by its uptime)
        self.shared[role] = self.shared.get(role, True) and before <= int(out[0]) <= after

    # ------------------------------------------------------------------ the run

    def run(self, result: MechanismResult, moves: int, tell: Progress) -> None:
        p = self.plan
        t0 = time.monotonic()
        self.events_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        result.addresses = {"cn": p.cn_address, "ha": p.home_agent}
        configs = self.configs()
        pcaps: dict[str, list[Path]] = {"mn": [], "cn": []}
        ring = KeyRing()
        try:
            for role, host in p.hosts.items():
                host.run(["mkdir", "-p", "-m", "0700", self.remote_dirs[role]])
            keyset = self.push(configs)
            ring = KeyRing(keyset.preconfigured.values(), keyset.mn_ha.values())
            result.preconfigured, result.mn_ha = list(keyset.preconfigured.values()), list(keyset.mn_ha.values())
            first, second = list(p.access)
            p.hosts["mn"].run(["ip", "link", "set", "dev", p.access[second], "down"])
            p.hosts["mn"].run(["ip", "link", "set", "dev", p.access[first], "up"])
            self.location = first
            for role in p.hosts:
                self.clock(role)
            pcaps["cn"].append(self.capture("cn", p.cn_capture))
            # One capture on all the MN's NICs: tcpdump on one NIC ends when it goes down.
            pcaps["mn"].append(self.capture("mn", "any", "ip6 and not tcp port 22"))
            key_dirs = {role: p.inventory.key_dir(p.names[role]) for role in p.hosts}
            for role in ("ha", "cn", "mn"):
                self.start_agent(role, f"{key_dirs[role]}/agent.yaml")
            result.bring_up_s = round(time.monotonic() - t0, 2)
            tell("up", backend=result.delay_backend, bring_up_s=result.bring_up_s)
            stream = self.run_dir / ".mn-events-stream.jsonl"
            with open(stream, "wb") as out:
                self.held.append(p.hosts["mn"].hold(["tail", "-n", "+1", "-F", configs["mn"]["event_log"]],
                                                    stdout=out))
            tail = EventTail(stream)
            self._wait(lambda: self._mn_bound() is not None, BIND_TIMEOUT_S, "the first binding")
            result.bound = True
            self.ctl("cn", "probe_start", f"home={p.home_address}", f"rate={PROBE_RATE:g}")
            for i in range(WARM_UP_MOVES):
                self._move(tail, i)
            tell("bound")
            tail.poll()
            for i in range(moves):
                move = self._move(tail, i)
                result.moves.append(move)
                tell("move", move=move)
            self.ctl("cn", "probe_stop")
        except TestbedError as exc:
            result.error = str(exc)
        except KeyboardInterrupt:
            result.interrupted = True
        finally:
            self._finish(result)
        for role in p.hosts:
            try:
                self.clock(role)
            except TestbedError:
                pass
        for role, paths in pcaps.items():
            frames = []
            for path in paths:
                captured, echoes = _read_capture(path, ring, self.offsets[role])
                frames += captured
                result.echoes.setdefault(role, []).extend(echoes)
            result.captured[role] = sorted(frames, key=lambda c: c.t_ns)
        result.pcaps = {f"{role}:{path.name}": str(path) for role, paths in pcaps.items() for path in paths}
        records = [c.record for c in result.captured.get("mn", [])]
        result.mh_types = dict(Counter(r.mh_type for r in records))
        result.bad_verdicts = dict(Counter(f"{r.mh_type}:{r.auth}" for r in records if r.mh_type in ("BU", "BA")))

    def _finish(self, result: MechanismResult) -> None:
        """Stop what we started there (agents first, then the tail and the captures), fetch
        the logs, remove the remote run directory."""
        for role in ("mn", "cn", "ha"):
            held = self.agents.get(role)
            if held is not None:
                held.stop(timeout=15.0)
        for held in reversed(self.held):
            held.stop()
        for role, host in self.plan.hosts.items():
            d = self.remote_dirs[role]
            for remote, local in ((f"{d}/events.jsonl", self.events_dir / f"{role}.jsonl"),
                                  (f"{d}/agent.log", self.run_dir / "logs" / f"{role}-agent.log")):
                try:
                    with open(local, "wb") as out:
                        host.run(["cat", remote], stdout=out, check=False)
                except (OSError, TestbedError):
                    pass
            try:
                host.run(["rm", "-rf", "--one-file-system", d], check=False)
            except TestbedError:
                pass
        (self.run_dir / ".mn-events-stream.jsonl").unlink(missing_ok=True)
        for role in self.plan.hosts:
            path = self.events_dir / f"{role}.jsonl"
            result.events[role] = read_typed_events(path) if path.exists() else []

    def _wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                raise TestbedError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.2)

    def _mn_bound(self) -> str | None:
        entries = self.ctl("mn", "bul").get("entries") or []
        coas = {e["careof"] for e in entries}
        if entries and all(e["state"] == "bound" for e in entries) and len(coas) == 1:
            return coas.pop()
        return None

    def _move(self, tail: EventTail, i: int) -> MoveResult:
        p = self.plan
        to = next(ar for ar in p.access if ar != self.location)
        if self.last_move_ns is not None:  # RFC 6275 MAX_UPDATE_RATE, as in the lab
            wait = self.last_move_ns + MOVE_INTERVAL_NS - self._mn_now()
            if wait > 0:
                time.sleep(wait / 1e9)  # pacing the moves, not waiting for an event
        out = p.hosts["mn"].text([p.python("mn"), "-c", MOVE_SCRIPT, p.access[self.location], p.access[to]]).split()
        t_move, offset = int(out[0]), int(out[1])
        self.offsets["mn"].append((t_move, offset))
        self.location, self.last_move_ns = to, t_move
        self._last_local = (time.monotonic_ns(), t_move)
        coa = ra = cn_ba = home_ba = probe = None
        careof = None
        deadline = time.monotonic() + MOVE_TIMEOUT_S
        probe_deadline = None
        while True:
            for e in tail.poll():  # typed events (testbed.agent.events), on the MN's clock
                t, kind = e.t_ns, type(e)
                if t < t_move:
                    continue
                if kind is RaNewPrefix and ra is None:
                    ra = t
                elif kind is CoaUsable and coa is None:
                    coa, careof = t, e.careof
                elif kind is CnRegistered and careof and e.careof == careof and e.peer == p.cn_address:
                    cn_ba = cn_ba or t
                elif kind is HomeRegistered and careof and e.careof == careof:
                    home_ba = home_ba or t
                elif kind is ProbeReceived and probe is None and careof and e.path == "direct" and e.to == careof:
                    probe = t
            if cn_ba and home_ba:
                if probe:
                    break
                probe_deadline = probe_deadline or time.monotonic() + PROBE_WAIT_S
                if time.monotonic() >= probe_deadline:
                    break
            if time.monotonic() >= deadline:
                missing = [w for w, v in (("the CN's BA", cn_ba), ("the HA's BA", home_ba)) if not v]
                raise TestbedError(f"timed out after {MOVE_TIMEOUT_S:g} s waiting for {' and '.join(missing)} "
                                   f"after move {i + 1} to {to}")
            time.sleep(POLL_S)
        bindings = self.ctl("cn", "bindings").get("bindings") or []
        binding = next((b for b in bindings if b.get("home") == p.home_address), None)
        ok = binding is not None and binding.get("careof") == careof and self._mn_bound() == careof
        ms = lambda t: None if t is None else (t - t_move) / 1e6  # noqa: E731
        return MoveResult(i + 1, to, careof, ms(ra), ms(coa), ms(cn_ba), ok, t_move, offset)

    def _mn_now(self) -> int:
        """The MN's monotonic clock now, estimated from the last move's stamp and ours."""
        local, remote = self._last_local
        return remote + (time.monotonic_ns() - local)


def describe_inventory(path: str | Path) -> str:
    plan = HostsPlan.load(path)
    return ", ".join(f"{role} {plan.names[role]}" for role in ("mn", "cn", "ha")) + \
        f"; MN NICs {shlex.join(plan.access.values())}"
