"""Turning an addressing plan into a running Mininet network (namespaces, veths, bridges).

- Nodes are Mininet ``Host`` namespaces; their sysctls (role dependent, see
  :func:`node_sysctls`) are set right after the namespace exists, before any interface
  is created, so every interface inherits them from ``conf/default``.
- Segments are :class:`LabBridge` (a ``mininet.nodelib.LinuxBridge`` configured with
  ``ip``: STP off, forward delay 0, multicast snooping off, IPv6 off on the bridge and its
  ports in the root namespace), named with the run's tag.
- A delayed link with the ``delayline`` backend gets a middle node ``w<N>`` holding two
  interfaces (IPv6 off) for a delay line; with ``netem`` both ends get a netem qdisc.
- Mininet's ``ifconfig`` calls are skipped: links come up with each node's ``ip -batch``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from mininet.node import Host
from mininet.nodelib import LinuxBridge

from testbed.lab.addressing import AddressPlan, Link, mac_address
from testbed.lab.errors import LabError
from testbed.lab.naming import bridge_name

log = logging.getLogger("testbed.lab")


class LabBridge(LinuxBridge):
    """A Linux bridge for one access segment (see the module docstring)."""

    @classmethod
    def setup(cls) -> None:  # Mininet's checks brctl, which we do not use
        pass

    def start(self, _controllers) -> None:
        ports = [i.name for i in self.intfList() if i.name != "lo"]
        script = [f"ip link add name {self.name} type bridge stp_state 0 forward_delay 0 "
                  f"mcast_snooping 0",
                  f"sysctl -q -w net.ipv6.conf.{self.name}.disable_ipv6=1"]
        for port in ports:
            script += [f"sysctl -q -w net.ipv6.conf.{port}.disable_ipv6=1",
                       f"ip link set dev {port} master {self.name} up"]
        script.append(f"ip link set dev {self.name} up")
        out = self.cmd(" && ".join(script) + " && echo bridge-ok")
        if "bridge-ok" not in out:
            raise LabError(f"bridge {self.name} could not be set up: {out.strip()}")

    def stop(self, deleteIntfs: bool = True) -> None:
        self.cmd(f"ip link del dev {self.name} 2>/dev/null")
        super(LinuxBridge, self).stop(deleteIntfs)  # Switch.stop: delete our ports


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


def node_sysctls(role: str, retrans_ms: int, optimistic: bool) -> list[str]:
    """sysctl assignments for a node of ``role``, applied before its interfaces exist."""
    both = lambda key, value: [f"net.ipv6.conf.all.{key}={value}",  # noqa: E731
                               f"net.ipv6.conf.default.{key}={value}"]
    if role == "wire":
        return both("disable_ipv6", 1)
    settings = both("disable_ipv6", 0) + [f"net.ipv6.neigh.default.retrans_time_ms={retrans_ms}"]
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


def build_network(net, plan: AddressPlan, run_id: str, backend: str, *, retrans_ms: int,
                  optimistic: bool, on_shell, on_bridge) -> Built:
    """Add nodes, bridges and links of ``plan`` to the (empty, unstarted) Mininet ``net``.

    ``on_shell(name, pid)`` and ``on_bridge(name)`` record resources as they are made
    (``on_bridge`` before the bridge exists). Returns what was built.
    """
    built = Built()
    for node in plan.nodes.values():
        host = net.addHost(node.name, cls=Host, ip=None)
        on_shell(node.name, host.pid)
        _sysctl(host, node_sysctls(node.role, retrans_ms, optimistic))
        built.node_names[node.name] = node.name
    for seg in plan.segments.values():
        name = bridge_name(run_id, seg.name)
        on_bridge(name)
        net.addSwitch(name, cls=LabBridge)
        built.node_names[seg.name] = name

    wire_count = 0
    seg_index = {name: i for i, name in enumerate(plan.segments, start=1)}
    for link in plan.links:
        ends = []
        for end in (link.a, link.b):
            mn_name = built.node_names[end.node]
            port = int(end.intf.rsplit("eth", 1)[1])
            if end.node in plan.segments:
                intf = f"{mn_name}-eth{port}"
                mac = "02:00:01:%02x:%02x:%02x" % (seg_index[end.node] >> 8,
                                                    seg_index[end.node] & 0xFF, port)
            else:
                intf = end.intf
                mac = plan.nodes[end.node].interfaces[intf].mac
            ends.append((mn_name, port, intf, mac))
        (n1, p1, i1, m1), (n2, p2, i2, m2) = ends
        delayed = link.delay_ms > 0
        if delayed and backend == "delayline":
            wire_count += 1
            wire = f"w{wire_count}"
            host = net.addHost(wire, cls=Host, ip=None)
            on_shell(wire, host.pid)
            _sysctl(host, node_sysctls("wire", retrans_ms, optimistic))
            wa, wb = f"{wire}-eth0", f"{wire}-eth1"
            wmac = lambda port: mac_address(0x1000 + wire_count, port)  # noqa: E731
            _add_link(net, n1, p1, i1, m1, wire, 0, wa, wmac(0))
            _add_link(net, wire, 1, wb, wmac(1), n2, p2, i2, m2)
            built.wires.append(wire)
            built.delayed.append(DelayedLink(link, ((n1, i1), (n2, i2)), wire, (wa, wb)))
        else:
            _add_link(net, n1, p1, i1, m1, n2, p2, i2, m2)
            if delayed:
                built.delayed.append(DelayedLink(link, ((n1, i1), (n2, i2))))
        if link.a.node in plan.mobiles and link.b.node in plan.segments:
            built.attachments[link.a.node] = i2  # the bridge port (root namespace)
    return built


def _add_link(net, n1: str, p1: int, i1: str, m1: str, n2: str, p2: int, i2: str, m2: str) -> None:
    # up=None: no ifconfig; the node's ip batch brings the interface up.
    net.addLink(n1, n2, port1=p1, port2=p2, intfName1=i1, intfName2=i2, addr1=m1, addr2=m2,
                params1={"up": None}, params2={"up": None})


def _sysctl(node, settings: list[str]) -> None:
    out = node.cmd("sysctl -q -w " + " ".join(settings) + " && echo sysctl-ok")
    if "sysctl-ok" not in out:
        raise LabError(f"node {node.name}: sysctl failed: {out.strip()}")


def ip_batch(plan: AddressPlan, built: Built, node_name: str) -> list[str]:
    """``ip -batch`` lines that bring up and address a node of the plan."""
    lines = ["link set dev lo up"]
    node = plan.nodes.get(node_name)
    if node is None:  # a wire
        return lines + [f"link set dev {node_name}-eth{p} up" for p in (0, 1)]
    for intf in sorted(node.interfaces.values(), key=lambda i: i.port):
        if intf.address:
            lines.append(f"-6 addr add {intf.address}/64 dev {intf.name} nodad")
        lines.append(f"link set dev {intf.name} up")
    for prefix, via in node.routes:
        lines.append(f"-6 route add {prefix} via {via}")
    if node.default_via:
        lines.append(f"-6 route add default via {node.default_via}")
    return lines


def configure_node(host, lines: list[str], volatile_dir: Path) -> None:
    path = volatile_dir / f"ip-{host.name}.batch"
    path.write_text("\n".join(lines) + "\n")
    out = host.cmd(f"ip -batch {path} && echo ip-ok")
    if "ip-ok" not in out:
        raise LabError(f"node {host.name}: ip -batch {path} failed: {out.strip()}")
