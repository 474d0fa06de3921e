"""The addressing plan of a lab topology: interfaces, addresses, routes, roles.

Computed from a :class:`topologies.base.LabTopo` alone (no root, no network), so it can be
inspected and tested without a lab. Interface names are Mininet's (``<node>-eth<port>``);
MAC addresses are fixed per node and port (``02:00:00:<node index, 2 bytes>:<port>``), so
a mobile node's SLAAC care-of address on any prefix is known in advance (EUI-64).

Routes: every router gets a static route to every /64 it is not on, via the next router on
a shortest path (over links where both ends have static addresses). Hosts with a static
address and no router role (CN, attacker) get a default route via a router on their link.
Mobile nodes learn theirs from router advertisements.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.errors import ConfigError
from topologies.base import ROUTER_ROLES, LabTopo


def intf_name(node: str, port: int) -> str:
    return f"{node}-eth{port}"


def mac_address(node_index: int, port: int) -> str:
    return f"02:00:00:{(node_index >> 8) & 0xFF:02x}:{node_index & 0xFF:02x}:{port & 0xFF:02x}"


def eui64_address(prefix: str, mac: str) -> str:
    """The SLAAC (EUI-64) address of ``mac`` on the /64 ``prefix``."""
    octets = bytes(int(x, 16) for x in mac.split(":"))
    iid = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:6]
    net = ipaddress.IPv6Network(prefix)
    return str(net.network_address + int.from_bytes(iid, "big"))


def _host_address(subnet: str, iid: int) -> str:
    return str(ipaddress.IPv6Network(subnet).network_address + iid)


@dataclass(frozen=True)
class Interface:
    """One interface of a node (its lab end; ``peer`` is the node or segment at the other end)."""

    node: str
    name: str
    port: int
    mac: str
    peer: str
    subnet: str
    address: str | None  # static address (no prefix length) or None (SLAAC)
    ra: bool = False  # the segment's router (its prefix, its RAs)
    home: bool = False
    delay_ms: float = 0.0
    silent: bool = False  # ...but radvd does not run there: no RAs at all


@dataclass
class Node:
    name: str
    role: str
    index: int
    interfaces: dict[str, Interface] = field(default_factory=dict)
    routes: list[tuple[str, str]] = field(default_factory=list)  # (prefix, via)
    default_via: str | None = None
    home_iid: int | None = None

    @property
    def is_router(self) -> bool:
        return self.role in ROUTER_ROLES

    def static_addresses(self) -> list[str]:
        return [i.address for i in self.interfaces.values() if i.address]


@dataclass(frozen=True)
class Segment:
    name: str
    subnet: str
    router: str | None  # the node sending RAs on it
    router_address: str | None
    home: bool


@dataclass(frozen=True)
class LinkEnd:
    node: str  # a node or a segment name
    intf: str


@dataclass(frozen=True)
class Link:
    """A topology link, as declared (before any delay-line node is inserted)."""

    a: LinkEnd
    b: LinkEnd
    subnet: str
    delay_ms: float


@dataclass(frozen=True)
class Mobile:
    name: str
    intf: str
    home_address: str
    home_prefix: str
    home_agent: str
    first_segment: str


@dataclass
class AddressPlan:
    """Everything about addresses and roles a lab user (or an agent) needs."""

    topology: str
    nodes: dict[str, Node]
    segments: dict[str, Segment]
    links: list[Link]
    home_prefix: str
    home_agent: str  # the HA's address on the home link
    home_agent_node: str
    mobiles: dict[str, Mobile]
    correspondents: dict[str, str]  # name -> address
    attackers: dict[str, str]  # name -> address
    ar_prefixes: dict[str, str]  # access router -> prefix of its segment

    # -- conveniences ---------------------------------------------------------------------

    @property
    def ha_address(self) -> str:
        return self.home_agent

    @property
    def home_agent_intf(self) -> str:
        """The HA's interface on the home link (where its radvd sets AdvHomeAgentFlag)."""
        node = self.nodes[self.home_agent_node]
        return next(i.name for i in node.interfaces.values() if i.home)

    @property
    def cn_address(self) -> str:
        """The (first) correspondent's address."""
        return next(iter(self.correspondents.values()))

    def home_address(self, mn: str = "mn") -> str:
        return self.mobile(mn).home_address

    def mobile(self, mn: str) -> Mobile:
        try:
            return self.mobiles[mn]
        except KeyError:
            raise ConfigError(f"no mobile node {mn!r} (mobile nodes: "
                              f"{', '.join(self.mobiles)})") from None

    def segment(self, where: str) -> Segment:
        """A segment by its name (``a2``) or by the node that routes it (``ar2``, ``ha``);
        ``home`` names the home link."""
        if where in self.segments:
            return self.segments[where]
        for seg in self.segments.values():
            if seg.router == where or (where == "home" and seg.home):
                return seg
        raise ConfigError(f"no segment {where!r} (segments: "
                          + ", ".join(f"{s.name} ({s.router})" for s in self.segments.values())
                          + ")")

    def expected_coa(self, mn: str, prefix: str) -> str:
        """The SLAAC address ``mn`` forms on ``prefix`` (EUI-64 of its fixed MAC)."""
        intf = self.nodes[mn].interfaces[self.mobile(mn).intf]
        return eui64_address(prefix, intf.mac)

    def primary_address(self, node: str) -> str | None:
        """A node's first static address (None for mobile nodes: their CoA changes)."""
        addrs = self.nodes[node].static_addresses()
        return addrs[0] if addrs else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for node in data["nodes"].values():
            node["routes"] = [list(r) for r in node["routes"]]
        return data


def build_plan(topo: LabTopo) -> AddressPlan:
    """The addressing plan of ``topo`` (see the module docstring)."""
    name = getattr(topo, "NAME", type(topo).__name__)
    where = f"topology {name!r}"
    hosts = topo.hosts(sort=False)
    switches = set(topo.switches(sort=False))
    nodes: dict[str, Node] = {}
    for index, host in enumerate(hosts, start=1):
        info = topo.nodeInfo(host)
        role = info.get("role")
        if role is None:
            raise ConfigError(f"{where}: node {host!r} has no role (not a LabTopo node?)")
        nodes[host] = Node(host, role, index, home_iid=info.get("home_iid"))
    seg_subnet = {s: topo.nodeInfo(s).get("subnet") for s in switches}
    for seg, subnet in seg_subnet.items():
        if not subnet:
            raise ConfigError(f"{where}: segment {seg!r} has no subnet")

    links: list[Link] = []
    seg_routers: dict[str, list[Interface]] = {s: [] for s in switches}
    for n1, n2, info in topo.links(sort=False, withInfo=True):
        # Mininet stores a link as declared; make the host end come first.
        node1, node2 = info["node1"], info["node2"]
        ends = [(node1, info["port1"], info.get("params1", {})),
                (node2, info["port2"], info.get("params2", {}))]
        delay_ms = _delay_of(info.get("delay"), where, f"{node1}-{node2}")
        segs = [e for e in ends if e[0] in switches]
        if len(segs) == 2:
            raise ConfigError(f"{where}: link {node1}-{node2} joins two segments")
        subnet = seg_subnet[segs[0][0]] if segs else info.get("subnet")
        if not subnet:
            raise ConfigError(f"{where}: link {node1}-{node2} has no subnet")
        link_ends = []
        for (node, port, params), (other, _, _) in zip(ends, reversed(ends)):
            if node in switches:
                link_ends.append(LinkEnd(node, intf_name(node, port)))
                continue
            iid = params.get("iid")
            intf = Interface(
                node=node, name=intf_name(node, port), port=port,
                mac=mac_address(nodes[node].index, port), peer=other, subnet=subnet,
                address=_host_address(subnet, iid) if iid is not None else None,
                ra=bool(params.get("ra")), home=bool(params.get("home")), delay_ms=delay_ms,
                silent=bool(params.get("silent")))
            nodes[node].interfaces[intf.name] = intf
            link_ends.append(LinkEnd(node, intf.name))
            if other in switches and intf.ra:
                seg_routers[other].append(intf)
        links.append(Link(link_ends[0], link_ends[1], subnet, delay_ms))

    segments: dict[str, Segment] = {}
    for seg in topo.switches(sort=False):
        routers = seg_routers[seg]
        if len(routers) > 1:
            raise ConfigError(f"{where}: segment {seg!r} has more than one advertising router")
        r = routers[0] if routers else None
        segments[seg] = Segment(seg, seg_subnet[seg], r.node if r else None,
                                r.address if r else None, bool(r and r.home))

    _compute_routes(nodes, where)

    homes = [s for s in segments.values() if s.home]
    has_mobiles = any(node.role == "mn" for node in nodes.values())
    if len(homes) > 1 or (has_mobiles and not homes):
        raise ConfigError(f"{where}: needs exactly one home link (an access link with home=True)")
    home = homes[0] if homes else Segment("", "", None, None, True)  # no mobile nodes, no home link
    mobiles: dict[str, Mobile] = {}
    for node in nodes.values():
        if node.role != "mn":
            continue
        if node.home_iid is None:
            raise ConfigError(f"{where}: mobile node {node.name!r} has no home_iid")
        seg_intfs = [i for i in node.interfaces.values() if i.peer in switches]
        if len(seg_intfs) != 1:
            raise ConfigError(f"{where}: mobile node {node.name!r} needs exactly one link to a segment")
        mobiles[node.name] = Mobile(
            node.name, seg_intfs[0].name, _host_address(home.subnet, node.home_iid),
            home.subnet, home.router_address or "", seg_intfs[0].peer)
    return AddressPlan(
        topology=name, nodes=nodes, segments=segments, links=links,
        home_prefix=home.subnet, home_agent=home.router_address or "",
        home_agent_node=home.router or "", mobiles=mobiles,
        correspondents={n.name: n.static_addresses()[0] for n in nodes.values()
                        if n.role == "cn" and n.static_addresses()},
        attackers={n.name: n.static_addresses()[0] for n in nodes.values()
                   if n.role == "attacker" and n.static_addresses()},
        ar_prefixes={s.router: s.subnet for s in segments.values() if s.router and not s.home},
    )


def _delay_of(value: Any, where: str, what: str) -> float:
    from testbed.lab.params import parse_delay_ms

    if value in (None, "", 0):
        return 0.0
    try:
        return parse_delay_ms(value)
    except ValueError:
        raise ConfigError(f"{where}: link {what} delay {value!r} is not a delay") from None


def _compute_routes(nodes: dict[str, Node], where: str) -> None:
    """Static routes for routers (shortest paths) and default routes for static hosts."""
    # subnet -> [(node, address)] of statically addressed ends
    on_subnet: dict[str, list[tuple[str, str]]] = {}
    for node in nodes.values():
        for intf in node.interfaces.values():
            if intf.address:
                on_subnet.setdefault(intf.subnet, []).append((node.name, intf.address))
    routers = {n.name for n in nodes.values() if n.is_router}
    # router adjacency: neighbour -> address to use as next hop
    adjacent: dict[str, dict[str, str]] = {r: {} for r in routers}
    for members in on_subnet.values():
        for a, _ in members:
            for b, b_addr in members:
                if a != b and a in routers and b in routers:
                    adjacent[a].setdefault(b, b_addr)
    for r in routers:
        # BFS from r: first hop towards every router
        first_hop: dict[str, str] = {r: r}
        queue = deque([r])
        while queue:
            cur = queue.popleft()
            for nxt in adjacent[cur]:
                if nxt not in first_hop:
                    first_hop[nxt] = nxt if cur == r else first_hop[cur]
                    queue.append(nxt)
        own = {i.subnet for i in nodes[r].interfaces.values()}
        for subnet, members in sorted(on_subnet.items()):
            if subnet in own:
                continue
            targets = [m for m, _ in members if m in routers and m in first_hop]
            if not targets:
                continue
            # the closest router on that subnet (BFS order of first_hop keys)
            order = list(first_hop)
            target = min(targets, key=order.index)
            hop = first_hop[target]
            nodes[r].routes.append((subnet, adjacent[r][hop]))
    for node in nodes.values():
        if node.is_router or node.role == "mn":
            continue
        for intf in node.interfaces.values():
            gateways = [addr for m, addr in on_subnet.get(intf.subnet, ()) if m in routers]
            if intf.address and gateways:
                node.default_via = gateways[0]
                break
        if node.default_via is None and node.static_addresses():
            raise ConfigError(f"{where}: host {node.name!r} has no router on any of its links")
