"""LabTopo: a Mininet ``Topo`` that also declares roles, subnets, delays and radvd links.

A lab topology says *what* the network is; :mod:`testbed.lab` turns it into namespaces,
bridges, addresses, routes, delays and daemons. The declarations live in Mininet's own node
and link options, so the same class loads with ``mn --custom`` (where Mininet ignores the
extra options and ``--link tc`` applies the ``delay`` option with netem).

Node options: ``role`` (one of ROLES; ``tester`` and ``iut`` are the conformance suite's
plain hosts, addressed by the suite itself); ``home_iid`` (mobile nodes: the interface id of the
home address on the home link).

Link options: ``subnet`` (point-to-point links: the link's /64; links to a segment use
the segment's ``subnet``), ``delay`` (one-way, Mininet form ``'2ms'``; absent
means undelayed), and per end (``params1``/``params2``): ``iid`` (static interface id of the
end's address on the subnet; absent: no static address, e.g. a mobile node using SLAAC),
``ra`` (this end is the segment's router and sends router advertisements), ``home`` (this end
is the home link of a home agent: AdvHomeAgentFlag), ``silent`` (the segment's router sends no
router advertisements after all).

Switches are access segments (Linux bridges in the lab). Their names are short (at most 3
characters) because the lab prefixes them with the run's tag to form bridge names.
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from mininet.topo import Topo

from testbed.errors import ConfigError
from testbed.lab.params import Param, format_delay, parse_params

ROLES = ("mn", "ar", "router", "ha", "cn", "attacker", "tester", "iut")
ROUTER_ROLES = frozenset({"ar", "router", "ha"})
MAX_SEGMENT_NAME = 3

COMMON_PARAMS: dict[str, Param] = {
    "delay": Param("delay", None, "one-way delay of every delayed link (overrides the per-link delays)"),
    "ra_min_interval": Param("interval", 0.05, "radvd MinRtrAdvInterval, seconds", minimum=0.0),
    "ra_max_interval": Param("interval", 0.1, "radvd MaxRtrAdvInterval, seconds", minimum=0.0),
    "ra_min_delay": Param("interval", 0.03, "radvd MinDelayBetweenRAs, seconds", minimum=0.0),
}


class LabTopo(Topo):
    """Base of the lab topologies: parameter handling and declaration helpers."""

    NAME: ClassVar[str] = "lab"
    PARAMS: ClassVar[dict[str, Param]] = {}

    @classmethod
    def param_specs(cls) -> dict[str, Param]:
        return {**COMMON_PARAMS, **cls.PARAMS}

    @classmethod
    def parse_params(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Typed parameter values (defaults filled in); ConfigError on unknown or bad ones."""
        values = parse_params(cls.param_specs(), raw, f"topology {cls.NAME!r}")
        if values["ra_min_interval"] > values["ra_max_interval"]:
            raise ConfigError(
                f"topology {cls.NAME!r}: ra_min_interval={values['ra_min_interval']:g} s is above "
                f"ra_max_interval={values['ra_max_interval']:g} s")
        return values

    def build(self, **raw: Any) -> None:  # called by Topo.__init__
        self.params = self.parse_params(raw)
        self.build_lab(self.params)

    def build_lab(self, p: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- declaration helpers --------------------------------------------------------------

    def link_delay(self, p: dict[str, Any], name: str) -> float:
        """The one-way delay (ms) of a link whose own parameter is ``name``."""
        return p["delay"] if p["delay"] is not None else p[name]

    def add_node(self, name: str, role: str, **opts: Any) -> str:
        if role not in ROLES:
            raise ConfigError(f"topology {self.NAME!r}: node {name!r} has unknown role {role!r}")
        return self.addHost(name, role=role, **opts)

    def add_segment(self, name: str, subnet: str) -> str:
        """An access segment (a bridge in the lab) whose hosts share ``subnet`` (a /64)."""
        if not 1 <= len(name) <= MAX_SEGMENT_NAME or not name.isalnum():
            raise ConfigError(f"topology {self.NAME!r}: segment name {name!r} must be 1 to "
                              f"{MAX_SEGMENT_NAME} letters or digits")
        return self.addSwitch(name, segment=True, subnet=self._check_subnet(subnet, name))

    def add_p2p(self, a: str, b: str, subnet: str, delay_ms: float = 0.0) -> None:
        """A routed point-to-point link on its own /64: ``a`` is ::1, ``b`` is ::2."""
        opts: dict[str, Any] = {"subnet": self._check_subnet(subnet, f"{a}-{b}"),
                                "params1": {"iid": 1}, "params2": {"iid": 2}}
        self._add_link(a, b, delay_ms, opts)

    def add_access(self, router: str, segment: str, delay_ms: float = 0.0,
                   home: bool = False, silent: bool = False) -> None:
        """The router's link to an access segment: the router is ::1 there and sends RAs
        (with AdvHomeAgentFlag when ``home``; none at all when ``silent``)."""
        self._add_link(router, segment, delay_ms,
                       {"params1": {"iid": 1, "ra": True, "home": home, "silent": silent}})

    def attach(self, host: str, segment: str, iid: int | None = None, delay_ms: float = 0.0) -> None:
        """``host`` on ``segment``: SLAAC only (``iid`` None, mobile nodes) or a static id."""
        self._add_link(host, segment, delay_ms, {"params1": {} if iid is None else {"iid": iid}})

    def _add_link(self, a: str, b: str, delay_ms: float, opts: dict[str, Any]) -> None:
        if delay_ms > 0:
            opts["delay"] = format_delay(delay_ms)
        self.addLink(a, b, **opts)

    def _check_subnet(self, subnet: str, what: str) -> str:
        try:
            net = ipaddress.IPv6Network(subnet)
        except ValueError:
            raise ConfigError(f"topology {self.NAME!r}: {what}: {subnet!r} is not an IPv6 prefix") from None
        if net.prefixlen != 64:
            raise ConfigError(f"topology {self.NAME!r}: {what}: {subnet} is not a /64")
        return str(net)
