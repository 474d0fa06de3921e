"""The handover self-test: the agents bind and move with each mechanism, in the real lab.

For each mechanism (return routability, then RFC 4449 precomputed Kbm with a generated key
pair) a fresh ``handover`` lab comes up with captures on the MN's and the CN's links, the
HA, CN and MN agents start, the MN binds, the CN streams probes to the home address, and the
MN moves between AR1 and AR2 ``moves`` times. Per move it records move-to-RA,
move-to-usable-CoA and move-to-BA (the CN's BA received by the MN) and checks the CN's
binding holds the new care-of address; afterwards the captures are read with our decoder
(Mobility Header types seen on the MN's link; authentication verdicts of BUs and BAs, with
the run's preconfigured data and MN-HA keys).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from testbed.diag.capture import read_frames
from testbed.diag.verify import KeyRing, verify_frames
from testbed.lab.agents import KeyInstaller, LabAgents
from testbed.lab.errors import LabTimeout
from testbed.lab.lab import Lab

MOVE_TIMEOUT_S = 10.0
BIND_TIMEOUT_S = 15.0
PROBE_RATE = 100.0


@dataclass
class MoveResult:
    index: int
    to: str
    careof: str | None
    move_to_ra_ms: float | None
    move_to_coa_ms: float | None
    move_to_ba_ms: float | None
    cn_binding_ok: bool
    t_move_ns: int = 0  # time.monotonic_ns() of the move


@dataclass
class MechanismResult:
    mechanism: str
    bound: bool = False
    error: str | None = None
    moves: list[MoveResult] = field(default_factory=list)
    mh_types: dict[str, int] = field(default_factory=dict)
    bad_verdicts: dict[str, int] = field(default_factory=dict)
    run_dir: str = ""
    events: dict[str, list[dict]] = field(default_factory=dict, repr=False)
    pcaps: dict[str, str] = field(default_factory=dict)
    capture_drops: dict[str, int | None] = field(default_factory=dict)  # per capture, as tcpdump reported
    preconfigured: list = field(default_factory=list, repr=False)  # in memory only, never written out
    mn_ha: list = field(default_factory=list, repr=False)  # in memory only, never written out

    @property
    def ok(self) -> bool:
        return self.bound and self.error is None and all(m.cn_binding_ok and m.move_to_ba_ms is not None for m in self.moves)

    def median(self, attr: str) -> float | None:
        values = [getattr(m, attr) for m in self.moves if getattr(m, attr) is not None]
        return statistics.median(values) if values else None

    def summary(self) -> dict:
        return {
            "mechanism": self.mechanism, "ok": self.ok, "bound": self.bound, "error": self.error,
            "moves": len(self.moves), "median_move_to_ra_ms": self.median("move_to_ra_ms"),
            "median_move_to_coa_ms": self.median("move_to_coa_ms"),
            "median_move_to_ba_ms": self.median("move_to_ba_ms"),
            "mh_types": self.mh_types, "bad_verdicts": self.bad_verdicts, "run_dir": self.run_dir,
        }


def bu_turnarounds(events: list[dict]) -> list[tuple[int, int, int | None]]:
    """Per BU an agent answered: (the BU's arrival, kernel timestamp; when the agent woke to
    read it, None in logs without it; the BA leaving), monotonic ns."""
    sent = {e["trigger_t_ns"]: e for e in events if e["event"] == "packet_sent" and e["what"].startswith("BA")}
    return [(e["t_ns"], sent[e["t_ns"]].get("woke_t_ns"), sent[e["t_ns"]]["t_ns"])
            for e in events if e["event"] == "bu_received" and e["t_ns"] in sent]


def bu_turnaround_ns(events: list[dict]) -> list[int]:
    """Per BU an agent answered: from the BU's arrival (kernel timestamp) to the BA leaving."""
    return [out - arrived for arrived, _, out in bu_turnarounds(events)]


def _first(events: list[dict], name: str, since: int, **match) -> dict | None:
    for e in events:
        if e["event"] == name and e["t_ns"] >= since and all(e.get(k) == v for k, v in match.items()):
            return e
    return None


def run_mechanism(mechanism: str, *, moves: int, run_dir: Path, params: dict | None = None,
                  keys: KeyInstaller | None = None) -> MechanismResult:
    """One mechanism in a fresh lab; ``keys`` installs the agents' keys (default ``LocalKeys``;
    the experiments and the ``testbed`` command pass the Ansible one)."""
    result = MechanismResult(mechanism, run_dir=str(run_dir))
    with Lab("handover", run_dir=run_dir, **(params or {})) as lab:
        plan = lab.addresses
        mn_intf = plan.mobile("mn").intf
        cn_intf = next(iter(plan.nodes["cn"].interfaces))
        captures = {"mn": lab.capture("mn", mn_intf), "cn": lab.capture("cn", cn_intf)}
        home = plan.home_address("mn")
        cn_address = plan.correspondents["cn"]
        with LabAgents(lab, mechanism, keys=keys) as agents:
            try:
                agents.wait(lambda: agents.mn_bound("mn"), BIND_TIMEOUT_S, "the first binding")
                result.bound = True
                agents["cn"].ctl("probe_start", home=home, rate=PROBE_RATE)
                for i in range(moves):
                    to = "ar2" if lab.location("mn") == plan.segment("ar1").name else "ar1"
                    prefix = plan.segment(to).subnet
                    t_move = lab.move("mn", to)
                    expected = plan.expected_coa("mn", prefix)

                    def moved():
                        b = agents.cn_binding("cn")
                        return b is not None and b["careof"] == expected and agents.mn_bound("mn") == expected

                    agents.wait(moved, MOVE_TIMEOUT_S, f"the bindings after move {i + 1} to {to}")
                    mn_events = agents["mn"].events()
                    ra = _first(mn_events, "ra_new_prefix", t_move, prefix=prefix)
                    coa = _first(mn_events, "coa_usable", t_move)
                    ba = _first(mn_events, "cn_registered", t_move, peer=cn_address)
                    ms = lambda e: None if e is None else (e["t_ns"] - t_move) / 1e6  # noqa: E731
                    result.moves.append(MoveResult(i + 1, to, expected, ms(ra), ms(coa), ms(ba), True, t_move))
                agents["cn"].ctl("probe_stop")
            except LabTimeout as exc:
                result.error = str(exc)
            finally:
                result.events = {node: handle.events() for node, handle in agents.agents.items()}
                keys = KeyRing(agents.preconfigured, agents.mn_ha)
                result.preconfigured = list(agents.preconfigured)
                result.mn_ha = list(agents.mn_ha)
        for cap in captures.values():
            cap.stop()
        result.pcaps = {node: str(cap.path) for node, cap in captures.items()}
        result.capture_drops = {node: cap.dropped for node, cap in captures.items()}
        records = list(verify_frames(read_frames(captures["mn"].path), keys))
        result.mh_types = dict(Counter(r.mh_type for r in records))
        result.bad_verdicts = dict(Counter(f"{r.mh_type}:{r.auth}" for r in records if r.mh_type in ("BU", "BA")))
    return result


def run_handover_check(*, moves: int = 1, run_root: Path, params: dict | None = None,
                       mechanisms: tuple[str, ...] = ("rr", "precomputed"),
                       keys=None) -> list[MechanismResult]:
    """``keys``: a function of the run directory returning the key installer of that run."""
    run_root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = [(m, run_root / f"handover-{stamp}-{m}") for m in mechanisms]
    return [run_mechanism(m, moves=moves, run_dir=d, params=params, keys=None if keys is None else keys(d))
            for m, d in runs]
