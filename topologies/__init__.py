"""Lab topologies (Mininet ``Topo`` classes, also loadable with ``mn --custom``).

``TOPOLOGIES`` maps the names ``testbed lab --topo NAME`` accepts to their classes.
"""

from __future__ import annotations

from topologies.base import LabTopo
from topologies.conformance import ConformanceTopo
from topologies.corporate import CorporateTopo
from topologies.handover import HandoverTopo
from topologies.load import LoadTopo

TOPOLOGIES: dict[str, type[LabTopo]] = {
    HandoverTopo.NAME: HandoverTopo,
    CorporateTopo.NAME: CorporateTopo,
    LoadTopo.NAME: LoadTopo,
    ConformanceTopo.NAME: ConformanceTopo,
}

__all__ = ["TOPOLOGIES", "ConformanceTopo", "CorporateTopo", "HandoverTopo", "LabTopo", "LoadTopo"]
