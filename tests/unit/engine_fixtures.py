"""Shared set-up for the engine tests: MN, HA and two CNs on a simulated network."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.ha import HomeAgent
from testbed.mip6.keys import PreconfiguredData
from testbed.mip6.mn import MobileNode
from testbed.mip6.mnha import MnHaSecurityAssociation
from testbed.mip6.seqstore import MemorySequenceStore
from testbed.mip6.simnet import SimNetwork

MS = 1_000_000


def A(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


HOME = A("2001:db8:1::100")
HA = A("2001:db8:1::1")
COA1 = A("2001:db8:11::100")
COA2 = A("2001:db8:12::100")
CN_RR = A("2001:db8:3::1")
CN_PC = A("2001:db8:4::1")
ATTACKER = A("2001:db8:66::1")
HOME_PREFIX = ipaddress.IPv6Network("2001:db8:1::/64")
MN_HA = (0x1001, bytes.fromhex("5c1e0a93d27f46b8e01d9a3c77f2b5046ea18d3f"))  # passes the key-file entropy checks
MN_HA_SA = MnHaSecurityAssociation(ipaddress.IPv6Address(HOME), ipaddress.IPv6Address(HA), *MN_HA)

# One-way delays (ms) between nodes, as in the handover topology's defaults.
ONE_WAY_MS = {
    frozenset(("mn", "ha")): 1 + 2 + 20,
    frozenset(("mn", "cn_rr")): 1 + 2 + 5,
    frozenset(("mn", "cn_pc")): 1 + 2 + 5,
    frozenset(("ha", "cn_rr")): 20 + 5,
    frozenset(("ha", "cn_pc")): 20 + 5,
}


def delay(a: str, b: str) -> int:
    return ONE_WAY_MS.get(frozenset((a, b)), 10) * MS


class SeededRng:
    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def __call__(self, n: int) -> bytes:
        return self._r.randbytes(n)


def preconfigured(cn: bytes = CN_PC, seed: int = 7) -> PreconfiguredData:
    r = random.Random(seed)
    return PreconfiguredData(
        ipaddress.IPv6Address(HOME), ipaddress.IPv6Address(cn), r.randbytes(20), r.randbytes(8), r.randbytes(8), "test"
    )


@dataclass
class World:
    net: SimNetwork
    mn: MobileNode
    ha: HomeAgent
    cn_rr: CorrespondentNode
    cn_pc: CorrespondentNode
    mn_store: MemorySequenceStore
    cn_pc_store: MemorySequenceStore

    def move(self, coa: bytes) -> None:
        self.net.set_addresses("mn", coa, HOME) if coa == HOME else self.net.set_addresses("mn", coa)
        self.net.call("mn", lambda now: self.mn.move(coa, now))

    def bound_everywhere(self, coa: bytes) -> bool:
        b1 = self.cn_rr.binding_for(HOME)
        b2 = self.cn_pc.binding_for(HOME)
        return (
            b1 is not None and b1.careof == coa and b2 is not None and b2.careof == coa
            and all(e.state == "bound" for e in self.mn.entries())
        )

    def wire_types(self, since: int = 0) -> list[tuple[str, str, int]]:
        """(from, to, MH type or -1) of every packet delivered since ``since`` ns."""
        from testbed.mip6.constants import IPPROTO_IPV6, IPPROTO_MH
        from testbed.mip6.packet import parse_packet

        out = []
        for t, src, dst, pkt in self.net.wire:
            if t < since:
                continue
            p = parse_packet(pkt)
            if p.next_header == IPPROTO_IPV6:
                p = parse_packet(p.payload)
            out.append((src, dst, p.payload[2] if p.next_header == IPPROTO_MH else -1))
        return out


def make_world(*, mn_store=None, cn_pc_store=None, data: PreconfiguredData | None = None, seed: int = 1) -> World:
    data = data or preconfigured()
    mn_store = mn_store if mn_store is not None else MemorySequenceStore()
    cn_pc_store = cn_pc_store if cn_pc_store is not None else MemorySequenceStore()
    net = SimNetwork(delay)
    mn = MobileNode(
        HOME, HA, mn_ha=MN_HA_SA, store=mn_store, correspondents=[CN_RR, CN_PC],
        peers=[data], rng=SeededRng(seed),
    )
    ha = HomeAgent(HA, HOME_PREFIX, keys={HOME: MN_HA_SA}, store=MemorySequenceStore())
    cn_rr = CorrespondentNode(CN_RR, store=MemorySequenceStore(), node="cn_rr", rng=SeededRng(seed + 1))
    cn_pc = CorrespondentNode(CN_PC, store=cn_pc_store, peers=[data], node="cn_pc", rng=SeededRng(seed + 2))
    net.add("mn", mn)
    net.add("ha", ha, HA)
    net.add("cn_rr", cn_rr, CN_RR)
    net.add("cn_pc", cn_pc, CN_PC)
    net.home_agent_of[HOME] = "ha"
    return World(net, mn, ha, cn_rr, cn_pc, mn_store, cn_pc_store)
