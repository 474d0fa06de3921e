"""``conformance``: a tester node and a node under test on one link, nothing else.

::

    tester (tester-eth0) ------------- iut (iut-eth0)      one veth link, link_delay (default none)

The conformance suite (``testbed conformance``) plays every other party itself, as the TAHI
tests do: the mobile nodes, correspondents and home agent the node under test talks to, and
the routers that advertise prefixes to a mobile node under test. Neither end has a static
address from the lab: the suite gives each profile its addresses (docs/conformance.md).
Both are plain hosts (no forwarding, no router advertisements accepted) until the suite
says otherwise for a profile.
"""

from __future__ import annotations

from typing import Any, ClassVar

from testbed.lab.params import Param
from topologies.base import LabTopo

LINK_PREFIX = "2001:db8:7e57::/64"


class ConformanceTopo(LabTopo):
    NAME: ClassVar[str] = "conformance"
    PARAMS: ClassVar[dict[str, Param]] = {
        "link_delay": Param("delay", 0.0, "one-way delay tester <-> node under test (ms; 0: none)"),
    }

    def build_lab(self, p: dict[str, Any]) -> None:
        self.add_node("tester", "tester")
        self.add_node("iut", "iut")
        self._add_link("tester", "iut", self.link_delay(p, "link_delay"), {"subnet": LINK_PREFIX})


topos = {"conformance": ConformanceTopo}
