"""Running the MN, CN and HA agents in a lab's nodes.

``LabAgents(lab, mechanism, keys=installer)`` works out each agent's configuration, has a key
installer make the keys and put them (and the configurations naming them) where the agents
read them, starts the agents with ``lab.popen`` (so the lab stops them whatever happens) and
talks to them through their control sockets. Event logs go to ``<run_dir>/events/<node>.jsonl``.

Key installers (``KeyInstaller``): ``install(lab, configs, pairs)`` gets each agent's
configuration without key files and the MN-CN pairs that use RFC 4449 preconfigured data;
it makes an MN-HA key per MN and preconfigured data per pair, installs them, writes the
configurations (adding ``preconfigured`` and ``mn_ha_keys``) and returns ``AgentKeys``;
``close()`` removes what it left on the controller. The provisioning layer's installer pushes
the keys with Ansible into each node's private key directory (``testbed.provision``; the
experiments and the ``testbed`` command use it). ``LocalKeys``, the default here, writes them
into a 0700 directory on tmpfs that is removed when the agents stop. Either way key files
never land in the run directory with the results.

``mechanism``: ``"rr"`` (return routability, the default of RFC 4449 section 5; a valid home
keygen token is reused at a move), ``"rr-scratch"`` (return routability from scratch at every
move: the MN keeps no home keygen token, so HoTI goes through the HA each time) or
``"precomputed"`` (RFC 4449 preconfigured data for every MN-CN pair). ``persistence``:
every agent's ``persistence`` setting (``"strict"``, the agents' default, or ``{"reserve": N}``;
testbed/agent/config.py). ``rr_mobiles``: with ``"precomputed"``, the mobile nodes that use
return routability all the same (no preconfigured data with any CN: a mixed population).
``start_batch``: how many MN agents start at once (default 1: each is up before the next
starts); a run of many agents starts them in batches, each batch's deadline grown with its size.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from testbed.agent.config import parse_keep_warm, parse_persistence
from testbed.agent.control import request
from testbed.agent.eventlog import read_typed_events
from testbed.errors import ConfigError
from testbed.lab.errors import LabTimeout
from testbed.lab.procstat import cpu_seconds
from testbed.mip6.events import Event
from testbed.mip6.keys import PreconfiguredData, generate
from testbed.mip6.mnha import MnHaSecurityAssociation, generate_mn_ha
from testbed.storage.keyfiles import write_mn_ha, write_new

MECHANISMS = ("rr", "rr-scratch", "precomputed")
START_TIMEOUT_S = 15.0
KEY_ROOT = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


@dataclass
class AgentKeys:
    """What a key installer did: each agent's configuration file (the path its node sees) and
    the keys it made, in memory only (to check captures; never written out)."""

    configs: dict[str, str]
    preconfigured: list[PreconfiguredData] = field(default_factory=list, repr=False)
    mn_ha: list[MnHaSecurityAssociation] = field(default_factory=list, repr=False)


class KeyInstaller(Protocol):
    def install(self, lab, configs: dict[str, dict], pairs: list[tuple[str, str]]) -> AgentKeys: ...

    def close(self) -> None: ...


class LocalKeys:
    """Key files written by this process into a 0700 directory on tmpfs (removed by ``close``),
    configurations into the lab's volatile directory."""

    def __init__(self) -> None:
        self.directory: Path | None = None

    def install(self, lab, configs: dict[str, dict], pairs: list[tuple[str, str]]) -> AgentKeys:
        plan = lab.addresses
        self.directory = Path(tempfile.mkdtemp(prefix=f"mip6-keys-{lab.run_id}-", dir=KEY_ROOT))
        lab.state.add_path(self.directory)  # removed by `testbed lab clean` after a crash
        keys = AgentKeys({})
        lists = {"mn": ("preconfigured", "mn_ha_keys"), "cn": ("preconfigured",), "ha": ("mn_ha_keys",)}
        configs = {node: {**config, **{key: [] for key in lists[config["role"]]}} for node, config in configs.items()}
        ha = plan.home_agent_node
        for mn in plan.mobiles:
            if mn not in configs:
                continue
            m = plan.mobile(mn)
            sa = generate_mn_ha(m.home_address, m.home_agent)
            path = self.directory / f"{mn}-mnha.yaml"
            write_mn_ha(path, sa)
            keys.mn_ha.append(sa)
            configs[mn]["mn_ha_keys"].append(str(path))
            configs[ha]["mn_ha_keys"].append(str(path))
        for mn, cn in pairs:
            data = write_new(self.directory / f"{mn}-{cn}.yaml",
                             generate(plan.mobile(mn).home_address, plan.correspondents[cn]))
            keys.preconfigured.append(data)
            configs[mn]["preconfigured"].append(data.source)
            configs[cn]["preconfigured"].append(data.source)
        for node, config in configs.items():
            path = Path(config["state_dir"]).parent / f"{node}.yaml"
            path.write_text(json.dumps(config, indent=1))
            keys.configs[node] = str(path)
        return keys

    def close(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class AgentHandle:
    node: str
    role: str
    config: Path
    control: Path
    event_log: Path
    process: object  # testbed.lab.processes.LabProcess
    started: float = field(default_factory=time.monotonic)

    def ctl(self, cmd: str, timeout: float = 5.0, **args) -> dict:
        return request(self.control, {"cmd": cmd, **args}, timeout=timeout)

    def events(self) -> list[Event]:
        """The agent's event log so far, typed (testbed.agent.events)."""
        try:
            self.ctl("flush", timeout=2.0)
        except OSError:
            pass  # stopped already: the log was flushed on the way out
        return read_typed_events(self.event_log) if self.event_log.exists() else []


class LabAgents:
    def __init__(self, lab, mechanism: str = "rr", *, mobiles: list[str] | None = None,
                 correspondents: list[str] | None = None, label: str | None = None,
                 keys: KeyInstaller | None = None, persistence: str | dict | None = None,
                 rr_mobiles: list[str] | None = None, start_batch: int = 1, keep_warm_ms: float = 0) -> None:
        if mechanism not in MECHANISMS:
            raise ConfigError(f"mechanism {mechanism!r} is not one of {', '.join(MECHANISMS)}")
        if persistence is not None:
            parse_persistence("the agents' persistence", persistence)  # refused here, before any agent starts
        self.persistence = persistence
        self.keep_warm_ms = parse_keep_warm("the agents' keep_warm_ms", keep_warm_ms)
        if start_batch < 1:
            raise ConfigError(f"start_batch {start_batch}: expected at least 1")
        self.start_batch = start_batch
        self.lab = lab
        self.mechanism = mechanism
        plan = lab.addresses
        self.mobiles = mobiles if mobiles is not None else list(plan.mobiles)
        self.correspondents = correspondents if correspondents is not None else list(plan.correspondents)
        self.rr_mobiles = set(rr_mobiles or ())
        if not self.rr_mobiles <= set(self.mobiles):
            raise ConfigError(f"rr_mobiles: {', '.join(sorted(self.rr_mobiles - set(self.mobiles)))} "
                              f"not among the mobile nodes")
        if self.rr_mobiles and mechanism != "precomputed":
            raise ConfigError(f"rr_mobiles needs the precomputed mechanism, not {mechanism!r}")
        self.label = label or mechanism
        self.events_dir = lab.run_dir / "events" / self.label
        self.volatile = lab.run_dir / ".lab" / "agents" / self.label
        self.agents: dict[str, AgentHandle] = {}
        self.preconfigured: list[PreconfiguredData] = []
        self.mn_ha: list[MnHaSecurityAssociation] = []  # in memory, for checking captures
        self.keys: KeyInstaller = keys if keys is not None else LocalKeys()
        # Unix socket paths are limited to 108 octets: control sockets get a short directory.
        self._sockets = Path(tempfile.mkdtemp(prefix=f"m6-{lab.run_id}-"))
        lab.state.add_path(self._sockets)  # removed by `testbed lab clean` after a crash

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> "LabAgents":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        plan = self.lab.addresses
        self.events_dir.mkdir(parents=True, exist_ok=True)
        self.volatile.mkdir(parents=True, exist_ok=True)
        configs: dict[str, dict] = {plan.home_agent_node: {
            "role": "ha", "address": plan.home_agent, "home_prefix": plan.home_prefix}}
        for cn in self.correspondents:
            configs[cn] = {"role": "cn", "address": plan.correspondents[cn]}
        for mn in self.mobiles:
            m = plan.mobile(mn)
            configs[mn] = {
                "role": "mn", "interfaces": [m.intf], "home_address": m.home_address,
                "home_agent": m.home_agent, "home_prefix": m.home_prefix,
                "correspondents": [plan.correspondents[c] for c in self.correspondents],
            }
            if self.mechanism == "rr-scratch":
                configs[mn]["home_token_reuse"] = False
        for node, config in configs.items():
            config.update({
                "node": node,
                "state_dir": str(self.volatile / f"{node}-state"),
                "event_log": str(self.events_dir / f"{node}.jsonl"),
                "control_socket": str(self._sockets / f"{node}.sock"),
            })
            if self.persistence is not None:
                config["persistence"] = self.persistence
            if self.keep_warm_ms:
                config["keep_warm_ms"] = self.keep_warm_ms
        pairs = [(mn, cn) for mn in self.mobiles if mn not in self.rr_mobiles
                 for cn in self.correspondents] if self.mechanism == "precomputed" else []
        installed = self.keys.install(self.lab, configs, pairs)
        self.preconfigured, self.mn_ha = list(installed.preconfigured), list(installed.mn_ha)
        self._start(plan.home_agent_node, configs[plan.home_agent_node], installed.configs[plan.home_agent_node])
        for cn in self.correspondents:
            self._start(cn, configs[cn], installed.configs[cn])
        # The HA and CNs serve (sockets open, ICMPv6 rules in) before any MN signals.
        for handle in self.agents.values():
            self._wait_up(handle)
        for first in range(0, len(self.mobiles), self.start_batch):
            batch = [self._start(mn, configs[mn], installed.configs[mn])
                     for mn in self.mobiles[first:first + self.start_batch]]
            for handle in batch:
                self._wait_up(handle, START_TIMEOUT_S * max(1.0, len(batch) / 2))

    def _start(self, node: str, config: dict, path: str) -> AgentHandle:
        process = self.lab.popen(node, [sys.executable, "-m", "testbed.cli", "agent", "--config", path],
                                 tag=f"agent-{self.label}")
        handle = AgentHandle(node, config["role"], Path(path), Path(config["control_socket"]),
                             Path(config["event_log"]), process)
        self.agents[node] = handle
        return handle

    def restart(self, node: str, *, kill: bool = True) -> AgentHandle:
        """Stop an agent (SIGKILL by default: a crash) and start it again with its state."""
        old = self.agents[node]
        if kill and old.process.running():
            os.killpg(old.process.pid, signal.SIGKILL)
        old.process.stop()
        process = self.lab.popen(node, [sys.executable, "-m", "testbed.cli", "agent", "--config", str(old.config)],
                                 tag=f"agent-{self.label}-r")
        handle = AgentHandle(node, old.role, old.config, old.control, old.event_log, process)
        self.agents[node] = handle
        self._wait_up(handle)
        return handle

    def _wait_up(self, handle: AgentHandle, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not handle.process.running():
                raise LabTimeout(f"agent on {handle.node} exited with {handle.process.returncode}; "
                                 f"see {handle.process.log_path}")
            try:
                if handle.ctl("status", timeout=1.0).get("ok"):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise LabTimeout(f"agent on {handle.node} did not answer on {handle.control} within {timeout:g} s")

    def stop(self) -> None:
        for handle in reversed(list(self.agents.values())):
            handle.process.stop()
        self.keys.close()
        shutil.rmtree(self._sockets, ignore_errors=True)

    # ------------------------------------------------------------------ queries

    def cpu_usage(self) -> dict[str, float]:
        """Each running agent's CPU time (user + system) since it started, as a share of one CPU."""
        out = {}
        for node, handle in self.agents.items():
            try:
                out[node] = cpu_seconds(handle.process.pid) / max(1e-9, time.monotonic() - handle.started)
            except (OSError, ValueError, IndexError):
                continue  # gone already
        return out

    def __getitem__(self, node: str) -> AgentHandle:
        return self.agents[node]

    def wait(self, condition, timeout: float, what: str):
        """Poll ``condition()`` until it returns something true, or LabTimeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise LabTimeout(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.01)

    def cn_binding(self, cn: str, mn: str = "mn") -> dict | None:
        home = self.lab.addresses.home_address(mn)
        for b in self.agents[cn].ctl("bindings")["bindings"]:
            if b["home"] == home:
                return b
        return None

    def mn_bound(self, mn: str = "mn") -> str | None:
        """The CoA every BUL entry of ``mn`` is bound with, or None while any is not."""
        entries = self.agents[mn].ctl("bul")["entries"]
        coas = {e["careof"] for e in entries}
        if all(e["state"] == "bound" for e in entries) and len(coas) == 1:
            return coas.pop()
        return None
