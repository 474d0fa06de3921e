"""``load``: one load node standing for many mobile nodes, and one correspondent.

::

    cn (2001:db8:e:1::2)          the correspondent agent under load
     |  link_delay (default none)
    load (2001:db8:e:1::1)        emulates N mobile nodes (`testbed load`): their BUs,
     |                            HoTIs and CoTIs leave here; their BAs, HoTs and CoTs end here
    [hm] home link 2001:db8:1::/64 (the load node advertises it as the home link)

The emulated mobile nodes' home addresses are ``2001:db8:1::1:0:0 + I`` (``HOME_BLOCK``) and
their care-of addresses in round R are ``2001:db8:a:R::1 + I`` (``CAREOF_BLOCK``). The load
node is a router (the CN's default route points at it); ``testbed load`` gives it blackhole
routes for both blocks, so the packets the CN sends to them end in its packet socket and are
then silently discarded by its kernel (no Neighbor Solicitations, no ICMPv6 errors).
"""

from __future__ import annotations

from typing import Any, ClassVar

from testbed.lab.params import Param
from topologies.base import LabTopo

HOME_PREFIX = "2001:db8:1::/64"
CN_LINK = "2001:db8:e:1::/64"
HOME_BLOCK = "2001:db8:1::1:0:0/96"
CAREOF_BLOCK = "2001:db8:a::/48"


class LoadTopo(LabTopo):
    """A load node (router) with the home link behind it, and a correspondent on a p2p link."""

    NAME: ClassVar[str] = "load"
    PARAMS: ClassVar[dict[str, Param]] = {
        "link_delay": Param("delay", 0.0, "one-way delay load node <-> correspondent (ms; 0: none)"),
    }

    def build_lab(self, p: dict[str, Any]) -> None:
        self.add_node("load", "router")
        self.add_node("cn", "cn")
        self.add_segment("hm", HOME_PREFIX)
        self.add_access("load", "hm", home=True)
        self.add_p2p("load", "cn", CN_LINK, self.link_delay(p, "link_delay"))


topos = {"load": LoadTopo}
