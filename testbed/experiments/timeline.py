"""Each handover decomposed, from the agents' event logs and the captures on one clock.

Every time here is ``time.monotonic_ns()`` (all namespaces share the clock; capture times
were moved from realtime by testbed/lab/handover_check.py). Per move, ``move_timeline``
finds the points of the handover (the move, the RA, the usable CoA, the home BU and its BA,
the CN's BU on the MN's wire, its arrival at the CN (kernel stamp), the BA leaving the CN,
the BA at the MN, the first route-optimised probe at the new CoA) and the *critical path*
from the usable CoA to the BA as a chain of phases, each one of:

- ``mn``/``cn``/``ha``: a node's processing, from a packet's arrival (kernel stamp) or the
  usable CoA to the next packet on the wire; durable writes within it are counted apart;
- ``net``: a packet in transit, from one node's wire to the next node's kernel stamp.

``decompose`` splits measured-minus-model (the model of docs/protocol.md section 7 counts the
network only) into the MN's processing, the CN's turnaround, the HA's processing, durable
writes and the delay lines' own bias (from round trips pinged on the same paths in the same
run, per path); the rest is ``unexplained``.

Which chain: ``precomputed`` CoA -> BU -> BA; ``rr`` CoA -> CoTI -> CoT -> BU -> BA;
``rr-scratch`` the later of that care-of chain and the home chain CoA -> home BU -> home BA
-> HoTI (tunnelled through the HA) -> HoT (tunnelled back) -> BU -> BA.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from testbed.agent.events import DurableWrite, PacketSent, ProbeReceived, RaNewPrefix
from testbed.mip6.events import (
    BaReceived,
    BuReceived,
    BuSent,
    CnRegistered,
    CoaUsable,
    CotiReceived,
    CotiSent,
    CotReceived,
    Event,
    HotiForwarded,
    HotiReceived,
    HotiSent,
    HotReceived,
    HotTunnelled,
)

KINDS = ("mn", "cn", "ha", "net")
# round trips of each path on the critical path, in the model's terms
PATH_ROUND_TRIPS = {
    "precomputed": {"mn-cn": 1},
    "rr": {"mn-cn": 2},
    "rr-scratch": {"mn-ha": 2, "ha-cn": 1, "mn-cn": 1},  # the home chain, the longer one at any sane delays
}
POINTS = ("ra", "coa", "home_bu", "home_ba", "bu_sent", "bu_at_cn", "ba_sent", "ba", "first_probe")


@dataclass
class Phase:
    name: str
    kind: str  # one of KINDS
    start: int
    end: int
    writes_ns: int = 0  # durable writes of that node within the phase

    @property
    def ms(self) -> float:
        return (self.end - self.start) / 1e6


@dataclass
class MoveTimeline:
    points: dict[str, int | None] = field(default_factory=dict)  # POINTS -> monotonic ns
    phases: list[Phase] = field(default_factory=list)  # the critical path, in order; [] if incomplete
    chain: str = ""  # "precomputed", "care-of", "home"
    probes_lost: int | None = None
    probe_gap_ms: float | None = None
    missing: str | None = None  # the first point that could not be found

    def ms_after(self, name: str, t0: int) -> float | None:
        t = self.points.get(name)
        return None if t is None else (t - t0) / 1e6


class _Log:
    """One node's typed events (testbed.mip6.events, testbed.agent.events), sorted by time,
    with look-ups in a window by event class."""

    def __init__(self, events: list[Event]) -> None:
        self.events = sorted(events, key=lambda e: e.t_ns)
        self._times = [e.t_ns for e in self.events]

    def first(self, kind: type[Event], lo: int, hi: int, **match) -> Event | None:
        for e in self.events[bisect.bisect_left(self._times, lo):]:
            if e.t_ns > hi:
                return None
            if type(e) is kind and all(getattr(e, k) == v for k, v in match.items()):
                return e
        return None

    def sent(self, what: str, trigger: Event | None, lo: int, hi: int) -> int | None:
        """When the agent's ``what`` left (after ``trigger``, which caused it): its kernel
        transmit stamp, or when the send returned if it has none."""
        if trigger is None:
            return None
        e = self.first(PacketSent, trigger.t_ns, hi, what=what, trigger_t_ns=trigger.t_ns)
        return None if e is None else e.left_ns

    def writes(self, lo: int, hi: int) -> int:
        """Time (ns) the node spent in durable writes that began within [lo, hi]."""
        total = 0
        for e in self.events[bisect.bisect_left(self._times, lo):]:
            if e.t_ns > hi:
                break
            if type(e) is DurableWrite:
                total += e.end_t_ns - e.t_ns
        return total


def _captured(records, lo: int, hi: int, **match) -> int | None:
    """The first captured Mobility Header message in [lo, hi] whose record matches."""
    for c in records:
        if c.t_ns < lo:
            continue
        if c.t_ns > hi:
            return None
        if all(getattr(c.record, k) == v for k, v in match.items()):
            return c.t_ns
    return None


def move_timeline(mechanism: str, events: dict[str, list[Event]] | dict[str, _Log], captured: dict,
                  *, t_move: int, careof: str, cn: str, ha: str, until: int) -> MoveTimeline:
    """The points and the critical path of one move (see the module docstring). ``until``:
    where this move's events end (the next move)."""
    logs = {n: e if isinstance(e, _Log) else _Log(e) for n, e in events.items()}
    mn, cnl, hal = logs.get("mn", _Log([])), logs.get("cn", _Log([])), logs.get("ha", _Log([]))
    mn_cap = sorted(captured.get("mn", []), key=lambda c: c.t_ns)
    cn_cap = sorted(captured.get("cn", []), key=lambda c: c.t_ns)
    tl = MoveTimeline()
    p = tl.points
    lo, hi = t_move, until

    def need(name: str, value):
        if value is None and tl.missing is None:
            tl.missing = name
        return value

    ra = mn.first(RaNewPrefix, lo, hi)
    p["ra"] = ra and ra.t_ns
    coa_e = mn.first(CoaUsable, lo, hi, careof=careof)
    if need("coa_usable", coa_e) is None:
        return tl
    coa = p["coa"] = coa_e.t_ns
    # the BU the CN acknowledged (a retransmission carries a new sequence number)
    registered = mn.first(CnRegistered, coa, hi, peer=cn, careof=careof)
    if need("cn_registered", registered) is None:
        return tl
    seq = registered.seq
    bu = mn.first(BuSent, coa, hi, peer=cn, seq=seq)
    ba_rx = p["ba"] = registered.t_ns
    bu_wire = p["bu_sent"] = _captured(mn_cap, coa, hi, mh_type="BU", dst=cn, seq=seq) or mn.sent("BU", bu, coa, hi)
    bu_rx_e = cnl.first(BuReceived, coa, hi, seq=seq, careof=careof)
    bu_rx = p["bu_at_cn"] = bu_rx_e and bu_rx_e.t_ns
    ba_tx = p["ba_sent"] = ((bu_rx and _captured(cn_cap, bu_rx, hi, mh_type="BA", src=cn, seq=seq))
                            or cnl.sent("BA", bu_rx_e, coa, hi))
    home_bu = mn.first(BuSent, coa, hi, mechanism="home", careof=careof)
    home_seq = home_bu and home_bu.seq
    p["home_bu"] = home_bu and (_captured(mn_cap, coa, hi, mh_type="BU", dst=ha, seq=home_seq)
                                or mn.sent("BU home", home_bu, coa, hi))
    home_ba_e = home_bu and mn.first(BaReceived, coa, hi, mechanism="home", seq=home_seq, status=0)
    p["home_ba"] = home_ba_e and home_ba_e.t_ns
    probe = mn.first(ProbeReceived, coa, hi, path="direct", to=careof)
    p["first_probe"] = probe and probe.t_ns
    _probe_figures(tl, mn, probe, lo)

    bu_part = [("BU on the MN's wire", bu_wire), ("BU at the CN", bu_rx), ("BA sent by the CN", ba_tx)]
    for name, value in bu_part:
        if need(name, value) is None:
            return tl
    tail = [Phase("network: BU MN->CN", "net", bu_wire, bu_rx),
            Phase("CN: BU->BA", "cn", bu_rx, ba_tx, cnl.writes(bu_rx, ba_tx)),
            Phase("network: BA CN->MN", "net", ba_tx, ba_rx)]
    if mechanism == "precomputed":
        tl.chain = "precomputed"
        tl.phases = [Phase("MN: CoA usable->BU on the wire", "mn", coa, bu_wire, mn.writes(coa, bu_wire)), *tail]
        return tl

    cot_rx_e = mn.first(CotReceived, coa, hi, peer=cn)
    hot_rx_e = mn.first(HotReceived, coa, hi, peer=cn)
    trigger = bu.t_ns if bu else None
    if hot_rx_e is not None and hot_rx_e.t_ns == trigger:
        head = _home_chain(tl, mn, cnl, hal, mn_cap, cn_cap, coa, hi, careof, cn, ha, hot_rx_e, home_bu,
                           home_ba_e, need)
        tl.chain = "home"
        last = hot_rx_e.t_ns
        last_name = "MN: HoT->BU on the wire"
    else:
        head = _careof_chain(mn, cnl, mn_cap, cn_cap, coa, hi, careof, cn, cot_rx_e, need)
        tl.chain = "care-of"
        last = cot_rx_e and cot_rx_e.t_ns
        last_name = "MN: CoT->BU on the wire"
    if head is None or last is None:
        need("the return routability messages", None)
        return tl
    tl.phases = [*head, Phase(last_name, "mn", last, bu_wire, mn.writes(last, bu_wire)), *tail]
    return tl


def _careof_chain(mn, cnl, mn_cap, cn_cap, coa, hi, careof, cn, cot_rx_e, need) -> list[Phase] | None:
    coti = mn.first(CotiSent, coa, hi, careof=careof)
    coti_wire = _captured(mn_cap, coa, hi, mh_type="CoTI", src=careof, dst=cn) or mn.sent("CoTI", coti, coa, hi)
    coti_rx_e = cnl.first(CotiReceived, coa, hi, careof=careof)
    coti_rx = coti_rx_e and coti_rx_e.t_ns
    cot_tx = ((coti_rx and _captured(cn_cap, coti_rx, hi, mh_type="CoT", src=cn, dst=careof))
              or cnl.sent("CoT", coti_rx_e, coa, hi))
    cot_rx = cot_rx_e and cot_rx_e.t_ns
    for name, value in (("CoTI on the MN's wire", coti_wire), ("CoTI at the CN", coti_rx),
                        ("CoT sent by the CN", cot_tx), ("CoT at the MN", cot_rx)):
        if need(name, value) is None:
            return None
    return [Phase("MN: CoA usable->CoTI on the wire", "mn", coa, coti_wire, mn.writes(coa, coti_wire)),
            Phase("network: CoTI MN->CN", "net", coti_wire, coti_rx),
            Phase("CN: CoTI->CoT", "cn", coti_rx, cot_tx, cnl.writes(coti_rx, cot_tx)),
            Phase("network: CoT CN->MN", "net", cot_tx, cot_rx)]


def _home_chain(tl, mn, cnl, hal, mn_cap, cn_cap, coa, hi, careof, cn, ha, hot_rx_e, home_bu, home_ba_e,
                need) -> list[Phase] | None:
    p = tl.points
    home_wire = p.get("home_bu")
    ha_rx_e = home_bu and hal.first(BuReceived, coa, hi, seq=home_bu.seq, careof=careof)
    ha_rx = ha_rx_e and ha_rx_e.t_ns
    ha_tx = hal.sent("BA home", ha_rx_e, coa, hi)
    home_ba = home_ba_e and home_ba_e.t_ns
    hoti = home_ba and mn.first(HotiSent, home_ba, hi, peer=cn)
    hoti_wire = (home_ba and _captured(mn_cap, home_ba, hi, mh_type="HoTI", tunnel_src=careof)) or (
        mn.sent("HoTI tunnelled", hoti, coa, hi))
    fwd_e = hoti_wire and hal.first(HotiForwarded, hoti_wire, hi, careof=careof)
    fwd_rx = fwd_e and fwd_e.t_ns
    fwd_tx = hal.sent("hoti_forwarded", fwd_e, coa, hi)
    hoti_rx_e = fwd_tx and cnl.first(HotiReceived, fwd_tx, hi)
    hoti_rx = hoti_rx_e and hoti_rx_e.t_ns
    hot_tx = (hoti_rx and _captured(cn_cap, hoti_rx, hi, mh_type="HoT", src=cn)) or cnl.sent("HoT", hoti_rx_e, coa, hi)
    tun_e = hot_tx and hal.first(HotTunnelled, hot_tx, hi, careof=careof)
    tun_rx = tun_e and tun_e.t_ns
    tun_tx = hal.sent("hot_tunnelled", tun_e, coa, hi)
    hot_rx = hot_rx_e.t_ns
    for name, value in (("home BU on the MN's wire", home_wire), ("home BU at the HA", ha_rx),
                        ("home BA sent by the HA", ha_tx), ("home BA at the MN", home_ba),
                        ("HoTI on the MN's wire", hoti_wire), ("HoTI at the HA", fwd_rx),
                        ("HoTI forwarded by the HA", fwd_tx), ("HoTI at the CN", hoti_rx),
                        ("HoT sent by the CN", hot_tx), ("HoT at the HA", tun_rx), ("HoT tunnelled by the HA", tun_tx)):
        if need(name, value) is None:
            return None
    return [Phase("MN: CoA usable->home BU on the wire", "mn", coa, home_wire, mn.writes(coa, home_wire)),
            Phase("network: home BU MN->HA", "net", home_wire, ha_rx),
            Phase("HA: home BU->BA", "ha", ha_rx, ha_tx, hal.writes(ha_rx, ha_tx)),
            Phase("network: home BA HA->MN", "net", ha_tx, home_ba),
            Phase("MN: home BA->HoTI on the wire", "mn", home_ba, hoti_wire, mn.writes(home_ba, hoti_wire)),
            Phase("network: HoTI MN->HA (tunnelled)", "net", hoti_wire, fwd_rx),
            Phase("HA: forwards HoTI", "ha", fwd_rx, fwd_tx, hal.writes(fwd_rx, fwd_tx)),
            Phase("network: HoTI HA->CN", "net", fwd_tx, hoti_rx),
            Phase("CN: HoTI->HoT", "cn", hoti_rx, hot_tx, cnl.writes(hoti_rx, hot_tx)),
            Phase("network: HoT CN->HA", "net", hot_tx, tun_rx),
            Phase("HA: tunnels HoT", "ha", tun_rx, tun_tx, hal.writes(tun_rx, tun_tx)),
            Phase("network: HoT HA->MN (tunnelled)", "net", tun_tx, hot_rx)]


def _probe_figures(tl: MoveTimeline, mn: _Log, first_ro: dict | None, t_move: int) -> None:
    """Probes lost in the handover, and the gap from the last probe on the old path to the
    first route-optimised one at the new CoA."""
    if first_ro is None:
        return
    before = [e for e in mn.events if type(e) is ProbeReceived and e.t_ns < first_ro.t_ns]
    if not before:
        return
    last_old = before[-1]
    received = {e.number for e in mn.events if type(e) is ProbeReceived}
    lo, hi = last_old.number, first_ro.number
    tl.probes_lost = sum(1 for n in range(lo + 1, hi) if n not in received)
    tl.probe_gap_ms = (first_ro.t_ns - last_old.t_ns) / 1e6


@dataclass
class Decomposition:
    measured_ms: float
    model_ms: float
    mn_processing_ms: float
    cn_turnaround_ms: float
    ha_processing_ms: float
    durable_writes_ms: float
    delay_line_bias_ms: float | None
    host_pauses_ms: float  # pauses (or a CPU held) overlapping the window: at most what they delayed
    unexplained_ms: float | None

    def as_dict(self) -> dict:
        return {k: (None if v is None else round(v, 3)) for k, v in self.__dict__.items()}


def decompose(tl: MoveTimeline, mechanism: str, model_ms: float,
              bias_ms: dict[str, float | None], paused_ms: float = 0.0) -> Decomposition | None:
    """Measured (usable CoA to BA) minus model, split; None when the timeline is incomplete.
    ``bias_ms``: per path ("mn-cn", "mn-ha", "ha-cn"), the delay lines' bias of one round trip;
    ``paused_ms``: how long the host paused a CPU (or the kernel held one) within the window,
    counted as explained up to that much (a pause of a CPU that nothing on the path needed at
    that moment delayed nothing: then the remainder comes out lower)."""
    if not tl.phases:
        return None
    measured = (tl.phases[-1].end - tl.phases[0].start) / 1e6
    by_kind = {k: 0.0 for k in KINDS}
    writes = 0.0
    for ph in tl.phases:
        by_kind[ph.kind] += ph.ms - ph.writes_ns / 1e6
        writes += ph.writes_ns / 1e6
    trips = PATH_ROUND_TRIPS["rr" if mechanism == "rr-scratch" and tl.chain == "care-of" else mechanism]
    bias = None
    if all(bias_ms.get(path) is not None for path in trips):
        bias = sum(n * bias_ms[path] for path, n in trips.items())
    explained = by_kind["mn"] + by_kind["cn"] + by_kind["ha"] + writes + (bias or 0.0)
    unexplained = None if bias is None else measured - model_ms - explained
    # A pause lengthens whichever phase it fell into; it is explained by the pause, not by
    # that phase's node or link, as far as the remainder reaches.
    pauses = max(0.0, min(paused_ms, unexplained)) if unexplained is not None else 0.0
    if unexplained is not None:
        unexplained -= pauses
    return Decomposition(measured, model_ms, by_kind["mn"], by_kind["cn"], by_kind["ha"], writes, bias, pauses,
                         unexplained)
