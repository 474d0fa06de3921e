"""A correspondent under load: N emulated mobile nodes against one CN agent, N scaled up.

``run_load_experiment(spec)`` brings up one ``load`` lab and, for each N of
``spec.mobiles`` in turn, runs ``testbed.lab.loadcheck.run_load`` (a fresh CN agent with N
key files, the bind / moves / open-loop phases) with the machine's figures for that time
(load average, steal time, CPU pressure, the busiest processes that are not ours). The
summary holds one row of figures per N and the targets of issue 12 item 4:

- every mobile bound, at the right care-of address, none lost (``lost == 0``), every BA
  authentic;
- the rate of moves the agent sustains (closed loop) at least half the rate the CN engine
  alone allows (1 / its cost per binding, measured in the same run): ``rate_ratio >= 0.5``;
- memory per binding and CPU per BU reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from testbed.lab.loadcheck import LoadSettings, prepare_lab, run_load
from testbed.lab.procstat import HostSample

DEFAULT_MOBILES = (100, 1000, 10000)
MIN_MOVE_BUS = 3000  # default moves: enough rounds that the move phase has this many BUs
RATE_TARGET = 0.5


@dataclass
class LoadSpec:
    mobiles: tuple[int, ...] = DEFAULT_MOBILES
    settings: LoadSettings = field(default_factory=LoadSettings)
    moves: int | None = None  # None: ceil(MIN_MOVE_BUS / N), at least 1


def default_moves(mobiles: int) -> int:
    return max(1, math.ceil(MIN_MOVE_BUS / mobiles))


def summarize(raw: dict) -> dict:
    """The row of figures for one N, from ``run_load``'s result."""
    phases = {p["phase"]: p for p in raw.get("phases", [])}
    bind, moves, open_ = phases.get("bind"), phases.get("moves"), phases.get("open")
    bound = raw["engine"]["bound_per_s"]
    sustained = (moves or bind)["bindings_per_s"]
    row = {
        "mobiles": raw["mobiles"], "precomputed": raw["precomputed"], "rr": raw["rr"],
        "startup_s": raw["startup_s"],
        "bind_per_s": bind["bindings_per_s"] if bind else None,
        "moves_per_s": moves["bindings_per_s"] if moves else None,
        "closed_ba_median_ms": (moves or bind)["ba_median_ms"], "closed_ba_p99_ms": (moves or bind)["ba_p99_ms"],
        "engine_us_per_binding": raw["engine"]["per_binding_us"], "engine_bound_per_s": bound,
        "rate_ratio": round(sustained / bound, 3) if bound else None,
        "open_ratio": round(open_["bindings_per_s"] / bound, 3) if open_ and bound else None,
        # the agent's CPU per BU against the engine's own cost: what the agent adds around it
        "cpu_ratio": (round(raw["cn_cpu_per_bu_us"] / raw["engine"]["per_binding_us"], 2)
                      if raw["cn_cpu_per_bu_us"] and raw["engine"]["per_binding_us"] else None),
        "open_offered_per_s": open_["offered_per_s"] if open_ else None,
        "open_achieved_per_s": open_["bindings_per_s"] if open_ else None,
        "open_ba_median_ms": open_["ba_median_ms"] if open_ else None,
        "open_ba_p99_ms": open_["ba_p99_ms"] if open_ else None,
        "open_retransmissions": open_["retransmissions"] if open_ else None,
        "lost": raw["check"]["lost"], "failed_jobs": sum(p["failed"] for p in phases.values()),
        "bad_ba_authenticators": raw["check"]["bad_ba_authenticators"],
        "memory_per_binding_bytes": raw["memory_per_binding_bytes"],
        "cpu_per_bu_us": raw["cn_cpu_per_bu_us"],
        "durable_write_median_us": raw["durable_write"]["update_median_us"],
        "persistence": raw["persistence"], "state_filesystem": raw["state_filesystem"],
    }
    row["none_lost"] = row["lost"] == 0 and row["bad_ba_authenticators"] == 0
    row["rate_target_met"] = row["rate_ratio"] is not None and row["rate_ratio"] >= RATE_TARGET
    return row


def run_load_experiment(spec: LoadSpec, lab_factory=None) -> dict:
    """Run every N of ``spec`` in one lab; returns ``{"rows": [...], "runs": [...], "ok": ...}``."""
    if lab_factory is None:
        from testbed.lab.lab import Lab

        lab_factory = lambda: Lab("load")  # noqa: E731
    rows, runs = [], []
    with lab_factory() as lab:
        prepare_lab(lab)
        ours = {p.pid for p in lab.processes} | {s.pid for s in lab.state.shells}
        for n in spec.mobiles:
            moves = spec.moves if spec.moves is not None else default_moves(n)
            settings = _with(spec.settings, moves=moves)
            before = HostSample()
            raw = run_load(lab, settings, n)
            raw["machine"] = HostSample().since(before, ours | {p.pid for p in lab.processes})
            raw["moves"] = moves
            runs.append(raw)
            rows.append(summarize(raw))
    return {"rows": rows, "runs": runs, "ok": all(r["none_lost"] and r["rate_target_met"] for r in rows),
            "none_lost": all(r["none_lost"] for r in rows)}


def _with(settings: LoadSettings, **changes) -> LoadSettings:
    from dataclasses import replace

    return replace(settings, **changes)
