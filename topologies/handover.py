"""``handover``: one mobile node moving between two access routers.

::

                      cn (2001:db8:e:1::2)
                       | core_cn_delay 5 ms
    ha ===============core============ att (2001:db8:bad::2, or on a segment: attacker_at)
    |  core_ha_delay   /  \\  ar_core_delay 2 ms
    |  20 ms        ar1    ar2
    | access_delay   |      |  access_delay 1 ms (router <-> its segment)
   [hm]            [a1]   [a2]      segments: Linux bridges
  home link          |
                    mn  -- moves a1 <-> a2 (layer 2: its bridge port changes bridge)

Addressing plan (2001:db8::/32, one /64 per link; see topologies/README.md):

- ``2001:db8:1::/64`` home link (segment ``hm``): HA ::1 (radvd, AdvHomeAgentFlag);
  home address of ``mn`` ::100.
- ``2001:db8:a:K::/64`` access segment ``aK`` of ``arK``: arK ::1 (radvd); the MN forms
  its care-of address by SLAAC (EUI-64 of its MAC); an attacker on the segment is ::bad.
- ``2001:db8:c::/64`` core-HA: core ::1, HA ::2.
- ``2001:db8:c:K::/64`` core-arK: core ::1, arK ::2.
- ``2001:db8:e:J::/64`` core-CN J: core ::1, CN ::2.
- ``2001:db8:bad::/64`` core-attacker: core ::1, attacker ::2.

Routers (core, ar1, ar2, ha) forward and have static routes to every /64; the CN and the
attacker have a default route via the core; the MN learns its default router from RAs.

Load with Mininet alone: ``mn --custom topologies/handover.py --topo handover --switch lxbr
--controller none --link tc`` (Mininet does not do the IPv6 part; ``testbed lab`` does).
"""

from __future__ import annotations

from typing import Any, ClassVar

from testbed.errors import ConfigError
from testbed.lab.params import Param
from topologies.base import LabTopo

HOME_PREFIX = "2001:db8:1::/64"
ATTACKER_IID = 0xBAD
SEGMENT_OF = {"ar1": "a1", "ar2": "a2", "home": "hm"}

DELAY_PARAMS: dict[str, Param] = {
    "access_delay": Param("delay", 1.0, "one-way delay router <-> its access segment (ms)"),
    "ar_core_delay": Param("delay", 2.0, "one-way delay access router <-> core (ms)"),
    "core_cn_delay": Param("delay", 5.0, "one-way delay core <-> correspondent (ms)"),
    "core_ha_delay": Param("delay", 20.0, "one-way delay core <-> home agent (ms)"),
    "core_attacker_delay": Param("delay", 0.0, "one-way delay core <-> attacker (ms; 0: none)"),
}


class HandoverTopo(LabTopo):
    """The MN on AR1's or AR2's segment; AR1, AR2, HA, CN and attacker around a core router."""

    NAME: ClassVar[str] = "handover"
    PARAMS: ClassVar[dict[str, Param]] = {
        **DELAY_PARAMS,
        "start": Param("choice", "ar1", "segment the MN starts on", choices=tuple(SEGMENT_OF)),
        "attacker_at": Param("choice", "core", "where the attacker is attached",
                             choices=("core", "ar1", "ar2", "home")),
        "ra_silent": Param("choice", "none", "an access router that sends no router advertisements "
                           "(a move onto its segment is never detected)", choices=("none", "ar1", "ar2")),
    }

    def build_lab(self, p: dict[str, Any]) -> None:
        if p["ra_silent"] == p["start"]:
            raise ConfigError(f"ra_silent={p['ra_silent']}: the MN starts on that router's segment "
                              f"(start={p['start']}) and would never get a care-of address")
        self.build_mobility_network(p, mobiles=[("mn", 0x100, SEGMENT_OF[p["start"]])], cns=["cn"])

    def build_mobility_network(self, p: dict[str, Any], mobiles: list[tuple[str, int, str]],
                               cns: list[str]) -> None:
        """Routers, segments, CNs and attacker around one core; ``mobiles`` as
        (name, home interface id, first segment)."""
        for name, home_iid, _segment in mobiles:
            self.add_node(name, "mn", home_iid=home_iid)
        self.add_node("ar1", "ar")
        self.add_node("ar2", "ar")
        self.add_node("core", "router")
        self.add_node("ha", "ha")
        for cn in cns:
            self.add_node(cn, "cn")
        self.add_node("att", "attacker")
        self.add_segment("a1", "2001:db8:a:1::/64")
        self.add_segment("a2", "2001:db8:a:2::/64")
        self.add_segment("hm", HOME_PREFIX)

        access = self.link_delay(p, "access_delay")
        silent = p.get("ra_silent", "none")
        self.add_access("ar1", "a1", access, silent=silent == "ar1")
        self.add_access("ar2", "a2", access, silent=silent == "ar2")
        self.add_access("ha", "hm", access, home=True)
        ar_core = self.link_delay(p, "ar_core_delay")
        self.add_p2p("core", "ar1", "2001:db8:c:1::/64", ar_core)
        self.add_p2p("core", "ar2", "2001:db8:c:2::/64", ar_core)
        self.add_p2p("core", "ha", "2001:db8:c::/64", self.link_delay(p, "core_ha_delay"))
        for j, cn in enumerate(cns, start=1):
            self.add_p2p("core", cn, f"2001:db8:e:{j:x}::/64", self.link_delay(p, "core_cn_delay"))
        if p["attacker_at"] == "core":
            self.add_p2p("core", "att", "2001:db8:bad::/64", self.link_delay(p, "core_attacker_delay"))
        else:
            self.attach("att", SEGMENT_OF[p["attacker_at"]], iid=ATTACKER_IID)
        for name, _home_iid, segment in mobiles:
            self.attach(name, segment)


topos = {"handover": HandoverTopo}
