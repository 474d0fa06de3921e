"""Ansible inventories: who gets which key, and how Ansible reaches each node.

Groups ``mip6_mn``, ``mip6_cn`` and ``mip6_ha`` name the agents' nodes. Host variables:

- mobile nodes: ``mip6_home_address``, ``mip6_home_agent`` (the HA's address) and
  ``mip6_precomputed`` (the CNs it shares RFC 4449 preconfigured data with; none: return
  routability with every CN);
- correspondent nodes and home agents: ``mip6_address``;
- optional on any: ``mip6_key_dir`` (default ``/etc/mip6``), ``mip6_agent`` (the agent's
  settings: keys.yml then writes its configuration, ``mip6_agent_config``, naming the key
  files), ``mip6_testbed_argv`` (how to run ``testbed`` there, for reloads),
  ``mip6_reload_command``.

``lab_inventory(nodes_of_lab(lab))`` makes one for a running lab: every node reached through its namespaces
(``mip6_nsenter``, a connection plugin in ``playbooks/connection_plugins``), the MN, CN and
HA nodes in their groups, every MN paired with every CN. ``load_inventory(path)`` reads a
user's inventory (any format Ansible reads, e.g. ``playbooks/inventory/ssh.example.yml``)
with Ansible's own parser.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.errors import ConfigError
from testbed.provision.keyset import Pair, Peers, check_node_name

GROUPS = {"mn": "mip6_mn", "cn": "mip6_cn", "ha": "mip6_ha"}
# The modules need only the standard library: the system's Python where there is one (it
# starts faster than a virtualenv's; measured 10 % off a push), else ours.
NODE_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
DEFAULT_KEY_DIR = "/etc/mip6"


@dataclass
class Inventory:
    """The part of an inventory provisioning needs, and how to hand it to ansible-runner."""

    mobiles: dict[str, tuple[str, str]]  # mn -> (home address, home agent address)
    correspondents: dict[str, str]  # cn -> address
    home_agents: dict[str, str]  # ha -> address
    pairs: list[Pair]
    source: Path | dict  # a user's inventory file, or the inventory itself
    key_dirs: dict[str, str] = field(default_factory=dict)  # host -> its key directory
    hosts_vars: dict[str, dict] = field(default_factory=dict)  # host -> its variables (as read)

    def peers(self, pairs: list[Pair] | None = None) -> Peers:
        return Peers(dict(self.mobiles), dict(self.correspondents), tuple(self.pairs if pairs is None else pairs))

    def key_dir(self, host: str) -> str:
        return self.key_dirs.get(host, DEFAULT_KEY_DIR)

    def home_agent_of(self, mn: str) -> str:
        agent = ipaddress.IPv6Address(self.mobiles[mn][1])
        for ha, address in self.home_agents.items():
            if ipaddress.IPv6Address(address) == agent:
                return ha
        raise ConfigError(f"mobile node {mn}: no host in group mip6_ha has address {agent} (its mip6_home_agent)")

    def select(self, pairs: list[Pair]) -> Inventory:
        """The same inventory with only ``pairs`` enabled (each must be an MN and a CN of it)."""
        self.peers(pairs)  # checks the names
        return Inventory(self.mobiles, self.correspondents, self.home_agents, list(pairs), self.source,
                         self.key_dirs, self.hosts_vars)


def parse_pairs(items: list[str] | None) -> list[Pair] | None:
    """``["mn:cn", ...]`` from the command line, or None when none are given."""
    if not items:
        return None
    pairs = []
    for item in items:
        mn, sep, cn = item.partition(":")
        if not sep or not mn or not cn or ":" in cn:
            raise ConfigError(f"--pair {item!r}: expected MN:CN (two inventory host names)")
        pairs.append((check_node_name(mn, "--pair MN"), check_node_name(cn, "--pair CN")))
    return pairs


def _address(host: str, name: str, value: Any) -> str:
    try:
        return str(ipaddress.IPv6Address(str(value)))
    except ValueError:
        raise ConfigError(f"inventory host {host}: {name} {value!r} is not an IPv6 address") from None


def from_hosts(hosts: dict[str, dict], roles: dict[str, str], source: Path | dict) -> Inventory:
    """An ``Inventory`` from each host's variables and role (mn, cn, ha or other)."""
    mobiles, correspondents, home_agents, pairs, key_dirs = {}, {}, {}, [], {}
    for host, role in roles.items():
        check_node_name(host, "inventory host")
        hv = hosts[host]
        if "mip6_key_dir" in hv:
            key_dir = str(hv["mip6_key_dir"])
            if not key_dir.startswith("/") or key_dir.rstrip("/") in ("", "/etc", "/tmp", "/root"):
                raise ConfigError(f"inventory host {host}: mip6_key_dir {key_dir!r} must be an absolute path of "
                                  "a directory of its own")
            key_dirs[host] = key_dir.rstrip("/")
        if role == "mn":
            for var in ("mip6_home_address", "mip6_home_agent"):
                if var not in hv:
                    raise ConfigError(f"inventory host {host} (group mip6_mn): {var} is missing")
            mobiles[host] = (_address(host, "mip6_home_address", hv["mip6_home_address"]),
                             _address(host, "mip6_home_agent", hv["mip6_home_agent"]))
        elif role in ("cn", "ha"):
            if "mip6_address" not in hv:
                raise ConfigError(f"inventory host {host} (group {GROUPS[role]}): mip6_address is missing")
            (correspondents if role == "cn" else home_agents)[host] = _address(host, "mip6_address", hv["mip6_address"])
    for mn in mobiles:
        cns = hosts[mn].get("mip6_precomputed") or []
        if isinstance(cns, str):
            cns = [cns]
        if not isinstance(cns, list):
            raise ConfigError(f"inventory host {mn}: mip6_precomputed must be a list of CN host names")
        pairs += [(mn, str(cn)) for cn in cns]
    inventory = Inventory(mobiles, correspondents, home_agents, pairs, source, key_dirs,
                          {h: hosts[h] for h in roles})
    inventory.peers()  # every pair names an MN and a CN of the inventory
    for mn in mobiles:
        inventory.home_agent_of(mn)
    return inventory


def load_inventory(path: str | Path) -> Inventory:
    """A user's inventory, read by Ansible's parser (INI or YAML, group_vars beside it)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"inventory {path}: no such file or directory")
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    try:
        manager = InventoryManager(loader=loader, sources=[str(path.resolve())])
    except Exception as exc:  # noqa: BLE001 - Ansible's parser errors have many types
        raise ConfigError(f"inventory {path}: {' '.join(str(exc).split())[:200]}") from None
    variables = VariableManager(loader=loader, inventory=manager)
    roles: dict[str, str] = {}
    for role, group in GROUPS.items():
        for host in manager.groups[group].get_hosts() if group in manager.groups else []:
            if roles.setdefault(host.name, role) != role:
                raise ConfigError(f"inventory {path}: host {host.name} is in both {GROUPS[roles[host.name]]} and {group}")
    if not roles:
        raise ConfigError(f"inventory {path}: no host in the groups {', '.join(GROUPS.values())}")
    hosts = {name: variables.get_vars(host=manager.get_host(name)) for name in roles}
    return from_hosts(hosts, roles, path.resolve())


@dataclass(frozen=True)
class LabNode:
    """A node of a running lab: its role, addresses and the process holding its namespaces."""

    name: str
    role: str  # mn, cn, ha or another lab role (routers, attacker: no keys)
    pid: int
    start_time: int | None
    address: str | None = None  # CN, HA
    home_address: str | None = None  # MN
    home_agent: str | None = None  # MN


def nodes_of_lab(lab) -> list[LabNode]:
    """The nodes of a ``testbed.lab.Lab`` this process runs."""
    from testbed.lab.state import process_start_time

    return _nodes(lab.addresses.to_dict(), {name: (lab.node(name).pid, process_start_time(lab.node(name).pid))
                                             for name in lab.addresses.nodes})


def nodes_of_run(run: str) -> list[LabNode]:
    """The nodes of a lab another process runs (``testbed lab``): ``run`` is its run directory
    or run id. ConfigError unless that lab is up (its owner and every node shell alive)."""
    from testbed.lab.state import RunState, list_states

    states = {}
    for path in list_states():
        try:
            state = RunState.load(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        states[state.run_id] = state
        states.setdefault(str(Path(state.run_dir).resolve()), state)
    state = states.get(run) or states.get(str(Path(run).resolve()))
    if state is None:
        raise ConfigError(f"--lab {run}: no running lab with that run id or run directory")
    if not state.owner.alive():
        raise ConfigError(f"--lab {run}: the process that ran this lab is gone (see 'testbed lab clean')")
    try:
        described = json.loads((Path(state.run_dir) / "lab.json").read_text())
    except (OSError, ValueError):
        raise ConfigError(f"--lab {run}: {state.run_dir}/lab.json is missing or unreadable (is the lab still starting?)") from None
    shells = {s.node: s for s in state.shells}
    pids = {}
    for name in described["addresses"]["nodes"]:
        shell = shells.get(name)
        if shell is None or not shell.alive():
            raise ConfigError(f"--lab {run}: node {name} is not running")
        pids[name] = (shell.pid, shell.start_time)
    return _nodes(described["addresses"], pids)


def _nodes(plan: dict, pids: dict[str, tuple[int, int | None]]) -> list[LabNode]:
    out = []
    for name, node in plan["nodes"].items():
        role = node["role"]
        pid, start = pids[name]
        extra: dict[str, str | None] = {}
        if role == "mn":
            m = plan["mobiles"][name]
            extra = {"home_address": m["home_address"], "home_agent": m["home_agent"]}
        elif role == "cn":
            extra = {"address": plan["correspondents"][name]}
        elif role == "ha":
            extra = {"address": plan["home_agent"]}
        out.append(LabNode(name, role, pid, start, **extra))
    return out


def lab_inventory(nodes: list[LabNode], *, pairs: list[Pair] | None = None,
                  agents: dict[str, dict] | None = None,
                  reach: dict[str, dict] | None = None) -> Inventory:
    """The inventory of a running lab's nodes (``nodes_of_lab``, ``nodes_of_run``).

    Every node is reached through its namespaces (``mip6_nsenter``) unless ``reach`` gives
    its connection variables (e.g. SSH). ``pairs``: the enabled MN-CN pairs (default every
    MN with every CN). ``agents``: per node the agent's settings (keys.yml then writes the
    agent's configuration). Ansible's temporary files on a node go into its private key
    directory (tmpfs), never onto a shared disk.
    """
    from testbed.lab.build import NODE_KEY_DIR

    mobiles = [n.name for n in nodes if n.role == "mn"]
    cns = [n.name for n in nodes if n.role == "cn"]
    enabled = [(mn, cn) for mn in mobiles for cn in cns] if pairs is None else pairs
    hosts: dict[str, dict] = {}
    roles: dict[str, str] = {}
    for node in nodes:
        hv: dict[str, Any] = {"ansible_connection": "mip6_nsenter", "mip6_node_pid": node.pid,
                              "mip6_node_start_time": node.start_time,
                              "ansible_python_interpreter": NODE_PYTHON}
        if reach and node.name in reach:
            hv = dict(reach[node.name])
        hv.update({"mip6_key_dir": NODE_KEY_DIR, "ansible_remote_tmp": NODE_KEY_DIR,
                   "mip6_testbed_argv": [sys.executable, "-m", "testbed.cli"]})
        role = node.role if node.role in GROUPS else "other"
        if role == "mn":
            hv.update(mip6_home_address=node.home_address, mip6_home_agent=node.home_agent,
                      mip6_precomputed=[cn for mn, cn in enabled if mn == node.name])
        elif role in ("cn", "ha"):
            hv["mip6_address"] = node.address
        if agents and node.name in agents:
            hv["mip6_agent"] = agents[node.name]
        hosts[node.name] = hv
        roles[node.name] = role
    doc: dict[str, Any] = {"all": {"hosts": {}, "children": {g: {"hosts": {}} for g in
                                                             (*GROUPS.values(), "mip6_other")}}}
    for name, hv in hosts.items():
        doc["all"]["hosts"][name] = hv
        doc["all"]["children"][GROUPS.get(roles[name], "mip6_other")]["hosts"][name] = {}
    return from_hosts(hosts, roles, doc)
