"""Turning an addressing plan into a running Mininet network (namespaces, veths, bridges).

- Nodes are Mininet ``Host`` namespaces; their sysctls (role dependent, see
  :func:`node_sysctls`) are set right after the namespace exists, before any interface
  is created, so every interface inherits them from ``conf/default``.
- Segments are :class:`LabBridge` (a ``mininet.nodelib.LinuxBridge`` configured with
  ``ip``: STP off, forward delay 0, multicast snooping off, IPv6 off on the bridge and its
  ports in the root namespace), named with the run's tag.
- A delayed link with the ``delayline`` backend gets a middle node ``w<N>`` holding two
  interfaces (IPv6 off) for a delay line; with ``netem`` both ends get a netem qdisc.
- Every node gets its own key directory ``NODE_KEY_DIR`` (``/etc/mip6``): a tmpfs mounted
  in the node's own mount namespace (Mininet's ``privateDirs``, done here once the shells
  are up), mode 0700. A file put there is visible inside that node only; it goes when the
  node's namespace does.
- Mininet's ``ifconfig`` calls are skipped: links come up with each node's ``ip -batch``;
  its per-interface ``ip link del`` is skipped too (:class:`LabIntf`).
"""

from __future__ import annotations

import logging
import os
import pty
import select
import time
from dataclasses import dataclass, field
from pathlib import Path

from mininet.link import Intf
from mininet.node import Host
from mininet.nodelib import LinuxBridge
from pyroute2 import IPRoute

from testbed.lab.addressing import AddressPlan, Link, mac_address
from testbed.lab.errors import LabError
from testbed.lab.naming import bridge_name

log = logging.getLogger("testbed.lab")

MCAST_SOLICIT = 10  # neighbour solicitations before giving up (default 3)
NODE_KEY_DIR = "/etc/mip6"
"""The agents' key directory in every node (private per node, see the module docstring)."""


class SplitShell:
    """Mixin for Mininet hosts: the shell start is split in two so that many start at once.
    ``startShell`` (called by the constructor) only spawns the shell in a new namespace;
    :func:`finish_shells` then waits for the prompts. (Mininet 2.3's
    ``Node.startShell``, unchanged but for that split.)"""

    def startShell(self, mnopts=None) -> None:
        if self.shell:
            raise LabError(f"{self.name}: shell is already running")
        opts = "-cd" if mnopts is None else mnopts
        if self.inNamespace:
            opts += "n"
        cmd = ["mnexec", opts, "env", "PS1=" + chr(127), "bash", "--norc", "--noediting",
               "-is", "mininet:" + self.name]
        self.master, self.slave = pty.openpty()
        self.shell = self._popen(cmd, stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                 close_fds=False)
        self.stdin = os.fdopen(self.master, "r")
        self.stdout = self.stdin
        self.pid = self.shell.pid
        self.pollOut = select.poll()
        self.pollOut.register(self.stdout)
        self.outToNode[self.stdout.fileno()] = self
        self.inToNode[self.stdin.fileno()] = self
        self.execed = False
        self.lastCmd = None
        self.lastPid = None
        self.readbuf = ""
        self.waiting = True  # until finish_shells() has seen the prompt


class LabHost(SplitShell, Host):
    """A lab node: a Mininet host in its own network namespace (see SplitShell)."""


def finish_shells(hosts: list, timeout: float = 30.0) -> None:
    """Wait for the first prompt of every host's shell, then set it up (as Mininet does)."""
    deadline = time.monotonic() + timeout
    for host in hosts:
        while True:
            if time.monotonic() > deadline:
                raise LabError(f"node {host.name}: its shell did not start within {timeout:g} s")
            if not host.pollOut.poll(100):
                continue
            data = host.read(1024)
            if data and data[-1] == chr(127):
                break
        host.waiting = False
    for host in hosts:
        host.sendCmd("unset HISTFILE; stty -echo; set +m")
    for host in hosts:
        host.waitOutput()


class LabIntf(Intf):
    """A Mininet interface whose ``delete()`` leaves the veth to the kernel.

    Deleting veths one by one costs ~80 ms each (an RCU grace period per device); when a
    node's namespace goes, the kernel removes all its devices, and the peers, in one batch.
    The lab waits for the root-namespace ends to vanish and deletes stragglers itself.
    """

    def delete(self) -> None:
        self.node.delIntf(self)
        self.link = None


SHELL_LINE_MAX = 3000  # octets of one command line for a node's shell (its terminal takes 4095)


def _chunks(commands: list[str], limit: int) -> list[list[str]]:
    """``commands`` in order, grouped so that each group joined with `` && `` stays under
    ``limit`` octets (a longer single command is a group of its own)."""
    groups: list[list[str]] = [[]]
    size = 0
    for command in commands:
        if groups[-1] and size + len(command) + 4 > limit:
            groups.append([])
            size = 0
        groups[-1].append(command)
        size += len(command) + 4
    return groups


class LabBridge(LinuxBridge):
    """A Linux bridge for one access segment (see the module docstring)."""

    @classmethod
    def setup(cls) -> None:  # Mininet's checks brctl, which we do not use
        pass

    def start(self, _controllers) -> None:
        ports = [i.name for i in self.intfList() if i.name != "lo"]
        script = [(f"ip link add name {self.name} type bridge stp_state 0 forward_delay 0 "
                   "mcast_snooping 0"),
                  f"sysctl -q -w net.ipv6.conf.{self.name}.disable_ipv6=1"]
        for port in ports:
            script += [f"sysctl -q -w net.ipv6.conf.{port}.disable_ipv6=1",
                       f"ip link set dev {port} master {self.name} up"]
        script.append(f"ip link set dev {self.name} up")
        # In chunks: the node's shell reads its commands through a terminal, whose line is
        # at most 4096 octets (a segment with 100 mobile nodes needs about 10,000).
        for chunk in _chunks(script, SHELL_LINE_MAX):
            out = self.cmd(" && ".join(chunk) + " && echo bridge-ok")
            if "bridge-ok" not in out:
                raise LabError(f"bridge {self.name} could not be set up: {out.strip()}")

    def stop(self, deleteIntfs: bool = True) -> None:
        # Netlink, not the node's shell: clean-up must not block on a shell that is gone.
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=self.name):
                ipr.link("del", index=index)
        super(LinuxBridge, self).stop(deleteIntfs)  # Switch.stop (LabIntf.delete: no-op)


@dataclass
class DelayedLink:
    """A link with a one-way delay: its two end interfaces (node, interface) and, with the
    delay-line backend, the middle node and its two interfaces."""

    link: Link
    ends: tuple[tuple[str, str], tuple[str, str]]
    wire: str | None = None
    wire_intfs: tuple[str, str] | None = None


@dataclass
class Built:
    """What :func:`build_network` made: Mininet node names per plan name, delayed links."""

    node_names: dict[str, str] = field(default_factory=dict)  # plan name -> Mininet name
    delayed: list[DelayedLink] = field(default_factory=list)
    # mobile node -> root-namespace interface (bridge port) its access link ends in
    attachments: dict[str, str] = field(default_factory=dict)
    wires: list[str] = field(default_factory=list)


def node_sysctls(role: str, optimistic: bool) -> list[str]:
    """sysctl assignments for a node of ``role``, applied before its interfaces exist.
    (A non-initial namespace has no ``neigh/default``: ND timers are set per interface.)"""
    def both(key: str, value: int) -> list[str]:
        return [f"net.ipv6.conf.all.{key}={value}", f"net.ipv6.conf.default.{key}={value}"]

    if role == "wire":
        return both("disable_ipv6", 1)
    settings = both("disable_ipv6", 0)
    if role == "mn":
        settings += both("forwarding", 0) + both("accept_ra", 1)
        settings += both("router_solicitation_delay", 0) + both("addr_gen_mode", 0)
        if optimistic:
            settings += both("accept_dad", 1) + both("dad_transmits", 1)
            settings += both("optimistic_dad", 1) + both("use_optimistic", 1)
        else:
            settings += both("accept_dad", 0)
        return settings
    settings += both("accept_ra", 0) + both("accept_dad", 0)
    forwarding = 1 if role in ("ar", "router", "ha") else 0
    return settings + both("forwarding", forwarding)


def build_network(net, plan: AddressPlan, run_id: str, backend: str, *,
                  optimistic: bool, on_shell, on_bridge) -> Built:
    """Add nodes, bridges and links of ``plan`` to the (empty, unstarted) Mininet ``net``.

    ``on_shell(name, pid, in_namespace=True)`` and ``on_bridge(name)`` record resources as
    they are made (``on_bridge`` before the bridge exists). Returns what was built.
    """
    built = Built()
    wired = [link for link in plan.links if link.delay_ms > 0 and backend == "delayline"]
    roles = {node.name: node.role for node in plan.nodes.values()}
    roles.update({f"w{k}": "wire" for k in range(1, len(wired) + 1)})
    shells = []
    for name in roles:
        host = net.addHost(name, cls=LabHost, ip=None)
        on_shell(name, host.pid)
        built.node_names[name] = name
        shells.append(host)
    finish_shells(shells)
    # (Mininet's Switch runs a command while it is constructed: no split start for bridges.)
    for seg in plan.segments.values():
        name = bridge_name(run_id, seg.name)
        on_bridge(name)
        switch = net.addSwitch(name, cls=LabBridge)
        on_shell(name, switch.pid, False)  # its shell is in the root namespace
        built.node_names[seg.name] = name
    # Sysctls before any interface exists, and the private key directory, in all nodes at once.
    os.makedirs(NODE_KEY_DIR, mode=0o700, exist_ok=True)  # the mount point (empty in the root namespace)
    run_parallel([(net[name], "sysctl -q -w " + " ".join(node_sysctls(role, optimistic))
                   + f" && {private_dir_command(NODE_KEY_DIR)}")
                  for name, role in roles.items()], "sysctl")

    wire_count = 0
    seg_index = {name: i for i, name in enumerate(plan.segments, start=1)}
    for link in plan.links:
        ends = []
        for end in (link.a, link.b):
            mn_name = built.node_names[end.node]
            port = int(end.intf.rsplit("eth", 1)[1])
            if end.node in plan.segments:
                intf = f"{mn_name}-eth{port}"
                index = seg_index[end.node]
                mac = f"02:00:01:{index >> 8:02x}:{index & 0xFF:02x}:{port & 0xFF:02x}"
            else:
                intf = end.intf
                mac = plan.nodes[end.node].interfaces[intf].mac
            ends.append((mn_name, port, intf, mac))
        (n1, p1, i1, m1), (n2, p2, i2, m2) = ends
        if link in wired:
            wire_count += 1
            wire = f"w{wire_count}"
            wa, wb = f"{wire}-eth0", f"{wire}-eth1"
            wire_index = 0x1000 + wire_count
            _add_link(net, n1, p1, i1, m1, wire, 0, wa, mac_address(wire_index, 0))
            _add_link(net, wire, 1, wb, mac_address(wire_index, 1), n2, p2, i2, m2)
            built.wires.append(wire)
            built.delayed.append(DelayedLink(link, ((n1, i1), (n2, i2)), wire, (wa, wb)))
        else:
            _add_link(net, n1, p1, i1, m1, n2, p2, i2, m2)
            if link.delay_ms > 0:
                built.delayed.append(DelayedLink(link, ((n1, i1), (n2, i2))))
        if link.a.node in plan.mobiles and link.b.node in plan.segments:
            built.attachments[link.a.node] = i2  # the bridge port (root namespace)
    return built


def private_dir_command(path: str) -> str:
    """Shell command run in a node: a fresh tmpfs (0700, root) on ``path`` in its mount namespace.
    (Mininet's mnexec made the node's mounts private: nothing propagates to the root namespace.)"""
    return f"mount -n -t tmpfs -o mode=0700,size=4m,nosuid,nodev,noexec mip6-keys {path}"


def run_parallel(commands: list[tuple[object, str]], what: str) -> None:
    """Run one shell command in each of several nodes concurrently; LabError if one fails."""
    marker = f"{what}-ok"
    for node, cmd in commands:
        node.sendCmd(f"{cmd} && echo {marker}")
    failures = []
    for node, cmd in commands:
        out = node.waitOutput()
        if marker not in out:
            failures.append(f"node {node.name}: {what} failed: {out.strip()} ({cmd[:80]})")
    if failures:
        raise LabError(failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))


def _add_link(net, n1: str, p1: int, i1: str, m1: str, n2: str, p2: int, i2: str, m2: str) -> None:
    # up=None: no ifconfig; the node's ip batch brings the interface up.
    net.addLink(n1, n2, port1=p1, port2=p2, intfName1=i1, intfName2=i2, addr1=m1, addr2=m2,
                params1={"up": None}, params2={"up": None})


def ip_batch(plan: AddressPlan, built: Built, node_name: str) -> list[str]:
    """``ip -6 -batch`` lines that bring up and address a node of the plan."""
    lines = ["link set dev lo up"]
    node = plan.nodes.get(node_name)
    if node is None:  # a wire
        return lines + [f"link set dev {node_name}-eth{p} up" for p in (0, 1)]
    for intf in sorted(node.interfaces.values(), key=lambda i: i.port):
        if intf.address:
            lines.append(f"addr add {intf.address}/64 dev {intf.name} nodad")
        lines.append(f"link set dev {intf.name} up")
    for prefix, via in node.routes:
        lines.append(f"route add {prefix} via {via}")
    if node.default_via:
        lines.append(f"route add default via {node.default_via}")
    return lines


def configure_command(host, lines: list[str], volatile_dir: Path, retrans_ms: int | None) -> str:
    """The shell command that runs the node's ``ip -6 -batch`` lines and sets the ND
    retransmit timer of its interfaces (the first Neighbor Solicitation after link-up is
    often lost: retry soon, not after 1 s), with more solicitations (a resolution that
    fails drops the packets queued for it)."""
    path = volatile_dir / f"ip-{host.name}.batch"
    path.write_text("\n".join(lines) + "\n")
    cmd = f"ip -6 -batch {path}"
    intfs = [i for i in host.intfNames() if i != "lo"]
    if retrans_ms is not None and intfs:
        cmd += " && sysctl -q -w " + " ".join(
            f"net.ipv6.neigh.{i}.retrans_time_ms={retrans_ms} "
            f"net.ipv6.neigh.{i}.mcast_solicit={MCAST_SOLICIT}" for i in intfs)
    return cmd
