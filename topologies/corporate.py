"""``corporate``: N mobile nodes (default 10) sharing two access segments, CNs, one HA.

The same core as ``handover`` (see topologies/handover.py and topologies/README.md for the
addressing plan) with mobile nodes ``mn1``..``mnN`` (home addresses 2001:db8:1::100 + I,
i.e. ``mn1`` is ::101, ``mn10`` is ::10a) and correspondents ``cn1``..``cnM`` on their own
core links 2001:db8:e:J::/64 (CN J is ::2). ``placement``: the mobile nodes start
alternately on ``a1`` and ``a2`` (``alternate``, the default) or all on one segment (``ar1``,
``ar2``: e.g. the storm experiment, where AR1 fails and every MN moves to AR2 at once).
"""

from __future__ import annotations

from typing import Any, ClassVar

from testbed.lab.params import Param
from topologies.handover import DELAY_PARAMS, SEGMENT_OF, HandoverTopo

MAX_MNS = 120  # the storm experiment runs 100 agents (docs/experiments-storm.md: what scales how)


class CorporateTopo(HandoverTopo):
    """N MNs on AR1's and AR2's segments, M CNs, one HA, one attacker."""

    NAME: ClassVar[str] = "corporate"
    PARAMS: ClassVar[dict[str, Param]] = {
        **DELAY_PARAMS,
        "n_mns": Param("int", 10, "number of mobile nodes", minimum=1, maximum=MAX_MNS),
        "n_cns": Param("int", 1, "number of correspondent nodes", minimum=1, maximum=9),
        "placement": Param("choice", "alternate", "where the mobile nodes start: alternately on a1 and a2, "
                           "or all on one access router's segment", choices=("alternate", "ar1", "ar2")),
        "attacker_at": Param("choice", "core", "where the attacker is attached",
                             choices=("core", "ar1", "ar2", "home")),
    }

    def build_lab(self, p: dict[str, Any]) -> None:
        placement = p["placement"]
        mobiles = [(f"mn{i}", 0x100 + i, SEGMENT_OF[placement] if placement != "alternate" else ("a1" if i % 2 else "a2"))
                   for i in range(1, p["n_mns"] + 1)]
        cns = [f"cn{j}" for j in range(1, p["n_cns"] + 1)]
        self.build_mobility_network(p, mobiles=mobiles, cns=cns)


topos = {"corporate": CorporateTopo}
