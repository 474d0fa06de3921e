"""Shared set-up for the engine tests: MN, HA and two CNs on a simulated network."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field

from testbed.mip6.actions import Persist, Send, carry_out
from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.events import ENGINE_EVENTS, Event
from testbed.mip6.ha import HomeAgent
from testbed.mip6.keys import PreconfiguredData
from testbed.mip6.mn import MobileNode
from testbed.mip6.mnha import MnHaSecurityAssociation
from testbed.mip6.persistence import STRICT, Persistence
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


class Disk(dict):
    """A node's durable records, as a dict (key -> SeqRecord), written as an agent writes them."""

    def put(self, key, record) -> None:
        self[key] = record


def durable(engine, actions: list, store, now: int = 0) -> list:
    """Carry out ``actions`` as an agent does, with ``store`` (a ``Disk``, a FileSequenceStore,
    anything whose ``put`` raises when it cannot write) as the disk; what was carried out."""

    def write(persist: Persist) -> str | None:
        try:
            store.put(persist.store_key, persist.record)
        except Exception as exc:  # noqa: BLE001 - a failing store, as the agent sees it
            return str(exc)
        return None

    return carry_out(actions, write, lambda p, reason: engine.persist_failed(p, reason, now))


class WithDisk:
    """An engine whose actions are carried out against ``disk`` (a ``Disk``) as an agent
    carries them out: ``receive``, ``handle_timer`` and ``move`` return what was carried out;
    everything else is the engine's."""

    def __init__(self, engine, disk: Disk | None = None) -> None:
        self.engine = engine
        self.disk = disk if disk is not None else Disk()

    def receive(self, data: bytes, now: int) -> list:
        return durable(self.engine, self.engine.receive(data, now), self.disk, now)

    def handle_timer(self, now: int) -> list:
        return durable(self.engine, self.engine.handle_timer(now), self.disk, now)

    def move(self, careof: bytes, now: int) -> list:
        return durable(self.engine, self.engine.move(careof, now), self.disk, now)

    def __getattr__(self, name: str):
        return getattr(self.engine, name)


def events(actions: list, name: str | None = None) -> list[dict]:
    """The events among ``actions`` as their log lines' objects (``name``'s only, when given:
    a name no event class has is an error, so a misspelt name cannot pass unnoticed)."""
    kind = Event if name is None else ENGINE_EVENTS[name]
    return [a.as_dict() for a in actions if isinstance(a, kind)]


def fields(actions: list, name: str) -> list[dict]:
    """The fields of the ``name`` events among ``actions`` (their objects without t_ns, node, event)."""
    return [{k: v for k, v in e.items() if k not in ("t_ns", "node", "event")} for e in events(actions, name)]


def of(actions: list, kind: type[Event]) -> list:
    """The events of class ``kind`` among ``actions``."""
    return [a for a in actions if isinstance(a, kind)]


def sends(actions: list) -> list:
    return [a for a in actions if type(a) is Send]


@dataclass
class World:
    net: SimNetwork
    mn: MobileNode
    ha: HomeAgent
    cn_rr: CorrespondentNode
    cn_pc: CorrespondentNode
    builders: dict = field(default_factory=dict, repr=False)  # node -> records -> a new engine

    def restart(self, name: str, records: dict | None = None):
        """Node ``name`` restarted (its bindings and timers gone): a new engine built from its
        disk, or from ``records`` (which then are its disk)."""
        if records is not None:
            self.net.durable[name] = dict(records)
        engine = self.builders[name](dict(self.net.durable.get(name, {})))
        self.net.nodes[name].engine = engine
        self.net.nodes[name].timer_at = None
        setattr(self, name, engine)
        return engine

    @property
    def mn_store(self) -> dict:
        """The MN's records on its (simulated) disk."""
        return self.net.durable.setdefault("mn", {})

    @property
    def cn_pc_store(self) -> dict:
        return self.net.durable.setdefault("cn_pc", {})

    def events_named(self, name: str, node: str | None = None) -> list[dict]:
        """The ``name`` events of the run (of ``node`` only, when given), as log objects; an
        unknown name is an error."""
        return [e.as_dict() for e in self.net.events_of(ENGINE_EVENTS[name], node)]

    def disks(self) -> dict[str, dict]:
        """Every node's records, as a restarted world would read them."""
        return {name: dict(records) for name, records in self.net.durable.items()}

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


def make_world(*, disks: dict[str, dict] | None = None, data: PreconfiguredData | None = None, seed: int = 1,
               persistence: dict[str, Persistence] | None = None) -> World:
    """MN, HA and two CNs (one RR, one precomputed) on a simulated network. ``disks``: each
    node's records to start from (a restart: ``World.disks()`` of an earlier world);
    ``persistence``: per node name, strict by default."""
    data = data or preconfigured()
    disks = {name: dict(records) for name, records in (disks or {}).items()}
    policy = (persistence or {}).get
    net = SimNetwork(delay)
    net.durable.update(disks)
    builders = {
        "mn": lambda records: MobileNode(
            HOME, HA, mn_ha=MN_HA_SA, records=records, persistence=policy("mn", STRICT),
            correspondents=[CN_RR, CN_PC], peers=[data], rng=SeededRng(seed)),
        "ha": lambda records: HomeAgent(HA, HOME_PREFIX, keys={HOME: MN_HA_SA}, records=records,
                                        persistence=policy("ha", STRICT)),
        "cn_rr": lambda records: CorrespondentNode(CN_RR, records=records, node="cn_rr", rng=SeededRng(seed + 1)),
        "cn_pc": lambda records: CorrespondentNode(CN_PC, peers=[data], records=records,
                                                   persistence=policy("cn_pc", STRICT), node="cn_pc",
                                                   rng=SeededRng(seed + 2)),
    }
    mn, ha, cn_rr, cn_pc = (builders[name](disks.get(name)) for name in ("mn", "ha", "cn_rr", "cn_pc"))
    net.add("mn", mn)
    net.add("ha", ha, HA)
    net.add("cn_rr", cn_rr, CN_RR)
    net.add("cn_pc", cn_pc, CN_PC)
    net.home_agent_of[HOME] = "ha"
    return World(net, mn, ha, cn_rr, cn_pc, builders)
