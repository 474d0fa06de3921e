"""The handover latency experiment: RFC 4449 precomputed Kbm against return routability.

Three mechanisms, each against its line of the model (docs/protocol.md section 7, computed
from the lab's link delays; it counts the network only):

- ``precomputed`` (RFC 4449): RTT(MN,CN);
- ``rr``: return routability with a valid home keygen token, CoTI/CoT then BU/BA: 2 x RTT(MN,CN);
- ``rr-scratch``: no valid home token at a move, HoTI through the HA once the home
  registration carries the new CoA, and CoTI: max(2 RTT(MN,HA) + RTT(HA,CN), RTT(MN,CN)) + RTT(MN,CN).

For each mechanism a fresh ``handover`` lab runs the agents (testbed/lab/handover_check.py):
the paths MN-CN, MN-HA and HA-CN are pinged (the delay lines' own bias, this run), then the
MN moves AR1 <-> AR2 ``moves`` times. Every move is decomposed from the event logs and the
captures (testbed/experiments/timeline.py): its points from the move to the first
route-optimised probe, the critical path's phases, and measured-minus-model split into the
MN's processing, the CN's turnaround, the HA's processing, durable writes and the delay
lines' bias; the rest is reported as unexplained.

The pause monitor (testbed/lab/pauses.py) runs throughout: ``paused_ms`` is how long a CPU
was paused (or held) within a move's usable-CoA-to-BA window. A move is *undisturbed* when
that is at most UNDISTURBED_SHARE of the model's time: for precomputed and rr at the default
delays that means no pause at all (the shortest one the watchers record is ~2 ms); for the
158 ms of rr-scratch, pauses of a few ms (most do not even touch the critical path: a packet
waiting in a delay line is not late unless its due time falls into the pause) are let pass,
else no move of it would be undisturbed while the host pauses ~10 times a second. The
verdicts are judged on undisturbed moves. Our own CPU load is reported beside it, never as a
pause.

The results directory holds ``spec.json``, ``metrics.csv``/``metrics.json`` (one row per
move), ``summary.json``, ``host.json`` (the monitor's figures and every pause),
``handover.png`` (per-move CoA-to-BA, and per mechanism the stacked timeline against the
model), ``report.md``, and per mechanism the lab's run directory (event logs, pcaps,
lab.json, daemon logs). No key material is ever written there.
"""

from __future__ import annotations

import csv
import json
import resource
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed.experiments.timeline import POINTS, decompose, move_timeline
from testbed.lab.handover_check import MechanismResult, run_mechanism
from testbed.lab.params import parse_delay_ms
from testbed.lab.pauses import PauseMonitor, describe
from testbed.provision.labkeys import AnsibleKeys
from topologies.handover import DELAY_PARAMS

DEFAULT_MOVES = 10
MECHANISMS = ("precomputed", "rr", "rr-scratch")
LABELS = {"precomputed": "precomputed Kbm (RFC 4449)",
          "rr": "return routability, valid home token (RFC 6275)",
          "rr-scratch": "return routability from scratch (RFC 6275)"}
SHORT = {"precomputed": "precomputed", "rr": "RR, home token", "rr-scratch": "RR from scratch"}
TOLERANCE_ABS_MS = {"precomputed": 1.0, "rr": 1.0, "rr-scratch": 2.0}
TOLERANCE_REL = 0.10
UNDISTURBED_SHARE = 0.02  # a move is undisturbed with host pauses of at most this share of its model
EXCESS_TERMS = ("mn_processing_ms", "cn_turnaround_ms", "ha_processing_ms", "durable_writes_ms",
                "delay_line_bias_ms", "host_pauses_ms", "unexplained_ms")
KIND_COLOURS = {"mn": "tab:orange", "cn": "tab:green", "ha": "tab:purple", "net": "tab:blue"}
PHASE_KINDS = {"MN": "mn", "CN": "cn", "HA": "ha"}
KIND_LABELS = {"mn": "MN processing", "cn": "CN turnaround", "ha": "HA processing", "net": "network (model + bias)"}


@dataclass
class HandoverSpec:
    moves: int = DEFAULT_MOVES
    mechanisms: tuple[str, ...] = MECHANISMS
    params: dict = field(default_factory=dict)  # lab parameters, e.g. {"core_ha_delay": "50ms"}
    persistence: str | dict = "strict"  # the agents' (docs/persistence.md): "strict" or {"reserve": N}
    keep_warm_ms: float = 0  # the agents' keep_warm_ms (docs/agent-latency.md): 0 off


def one_way_ms(params: dict) -> dict[str, float]:
    """The one-way delay of each path the signalling takes (ms), from the topology's link delays."""
    d = {name: parse_delay_ms(params.get(name, spec.default)) for name, spec in DELAY_PARAMS.items()}
    return {"mn-cn": d["access_delay"] + d["ar_core_delay"] + d["core_cn_delay"],
            "mn-ha": d["access_delay"] + d["ar_core_delay"] + d["core_ha_delay"],
            "ha-cn": d["core_ha_delay"] + d["core_cn_delay"]}


def model_ms(params: dict) -> dict[str, float]:
    """docs/protocol.md section 7, from the handover topology's one-way delays (processing ignored)."""
    one_way = one_way_ms(params)
    rtt_mn_cn, rtt_mn_ha, rtt_ha_cn = (2 * one_way[p] for p in ("mn-cn", "mn-ha", "ha-cn"))
    return {
        "precomputed": rtt_mn_cn,
        "rr": 2 * rtt_mn_cn,  # a valid home keygen token: CoTI/CoT, then BU/BA
        "rr-scratch": max(2 * rtt_mn_ha + rtt_ha_cn, rtt_mn_cn) + rtt_mn_cn,
    }


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p95": None}
    v = sorted(values)
    return {"median": round(statistics.median(v), 3), "p95": round(v[min(len(v) - 1, round(0.95 * (len(v) - 1)))], 3)}


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


PATH_ENDS = {"mn-cn": ("mn", "cn"), "mn-ha": ("mn", "ha"), "ha-cn": ("ha", "cn")}  # whose captures


def path_bias(result: MechanismResult, params: dict, host: PauseMonitor) -> dict[str, dict]:
    """Per path (MN-CN, MN-HA, HA-CN): the delay lines' (and kernels') own bias of one round
    trip in this run. Measured as the handover's network phases are: each path ping's
    request and reply from one end's capture to the other's (kernel stamps at both ends, no
    user space), the pings no host pause overlapped; the medians of the two directions minus
    the configured one-way delays. The ping round trips themselves are kept for reference."""
    one_way = one_way_ms(params)
    out = {}
    for path, (a, b) in PATH_ENDS.items():
        seen_a = {(e.kind, e.src, e.dst, e.ident, e.seq): e.t_ns for e in result.echoes.get(a, [])}
        seen_b = {(e.kind, e.src, e.dst, e.ident, e.seq): e.t_ns for e in result.echoes.get(b, [])}
        forward, back, samples = [], [], 0
        for key, t_a in seen_a.items():
            t_b = seen_b.get(key)
            if t_b is None:
                continue
            samples += 1
            lo, hi = min(t_a, t_b), max(t_a, t_b)
            if host.overlaps(lo - 1_000_000, hi + 1_000_000):
                continue
            (forward if key[0] == "request" else back).append((t_b - t_a if key[0] == "request" else t_a - t_b) / 1e6)
        pings = [rtt for rtt, _ in result.path_pings.get(path, [])]
        bias = None
        if forward and back:
            bias = round(statistics.median(forward) + statistics.median(back) - 2 * one_way[path], 3)
        out[path] = {"configured_rtt_ms": 2 * one_way[path],
                     "forward_ms": round(statistics.median(forward), 3) if forward else None,
                     "back_ms": round(statistics.median(back), 3) if back else None,
                     "samples": samples, "clean_samples": min(len(forward), len(back)),
                     "ping_rtt_ms": statistics.median(pings) if pings else None, "bias_ms": bias}
    return out


def metric_rows(result: MechanismResult, model: float, bias: dict[str, dict], host: PauseMonitor | None
                ) -> tuple[list[dict], list]:
    """One row per move, and the moves' timelines (for the plot)."""
    rows, timelines = [], []
    events = result.events
    plan = result.addresses
    bias_ms = {p: b["bias_ms"] for p, b in bias.items()}
    for i, m in enumerate(result.moves):
        until = result.moves[i + 1].t_move_ns if i + 1 < len(result.moves) else 1 << 62
        tl = move_timeline(result.mechanism, events, result.captured, t_move=m.t_move_ns, careof=m.careof or "",
                           cn=plan["cn"], ha=plan["ha"], until=until)
        coa, ba = tl.points.get("coa"), tl.points.get("ba")
        coa_to_ba = None if coa is None or ba is None else round((ba - coa) / 1e6, 3)
        paused = host.paused_ms_monotonic(coa, ba) if host is not None and coa_to_ba is not None else None
        d = decompose(tl, result.mechanism, model, bias_ms, paused or 0.0)
        row = {"mechanism": result.mechanism, "move": m.index, "to": m.to, "careof": m.careof}
        for name in POINTS:
            row[f"{name}_ms"] = _round(tl.ms_after(name, m.t_move_ns))
        row |= {"move_to_ra_ms": row["ra_ms"], "move_to_coa_ms": row["coa_ms"], "move_to_ba_ms": row["ba_ms"],
                "coa_to_ba_ms": coa_to_ba, "model_ms": model, "paused_ms": paused,
                "undisturbed": paused <= UNDISTURBED_SHARE * model if paused is not None else None}
        dd = d.as_dict() if d is not None else {}
        for term in EXCESS_TERMS:
            row[term] = dd.get(term)
        row |= {"probes_lost": tl.probes_lost, "probe_gap_ms": _round(tl.probe_gap_ms), "chain": tl.chain,
                "missing": tl.missing, "cn_binding_ok": m.cn_binding_ok}
        rows.append(row)
        timelines.append((row, tl))
    return rows, timelines


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


ProgressFn = Callable[..., None]


def run_handover_experiment(spec: HandoverSpec, out: Path, progress: ProgressFn | None = None,
                            backend=None) -> dict:
    """Run every mechanism of ``spec`` and write the results into ``out``. Ctrl-C stops the
    moves; what was measured is kept and the results are still written (``interrupted``).
    ``backend``: None for Mininet labs, or machines of an inventory
    (``testbed.experiments.multihost.HostsBackend``); the results layout is the same."""
    tell = progress or (lambda kind, **info: None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(asdict(spec), indent=1))
    models = model_ms(spec.params)
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%S"), time.monotonic()
    results: list[MechanismResult] = []
    interrupted = False
    installers = {m: AnsibleKeys(record=out / m / "ansible") if backend is None  # keys pushed with Ansible
                  else backend.installer(m, out / m / "ansible") for m in spec.mechanisms}
    host = PauseMonitor()
    cpu0 = _cpu_seconds()
    try:
        host.start()
        for mechanism in spec.mechanisms:
            tell("mechanism", mechanism=mechanism, moves=spec.moves)
            told = lambda kind, m=mechanism, **info: tell(kind, mechanism=m, **info)  # noqa: E731
            if backend is None:
                result = run_mechanism(mechanism, moves=spec.moves, run_dir=out / mechanism, params=spec.params,
                                       keys=installers[mechanism], measure_paths=True, persistence=spec.persistence,
                                       keep_warm_ms=spec.keep_warm_ms, progress=told)
            else:
                result = backend.run(mechanism, moves=spec.moves, run_dir=out / mechanism, keys=installers[mechanism],
                                     progress=told, params=spec.params, persistence=spec.persistence)
            results.append(result)
            tell("mechanism_done", mechanism=mechanism, result=result)
            if result.interrupted:
                interrupted = True
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        restore = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the results are written whatever happens
        try:
            host.stop()  # after the labs: every process of ours has ended and been waited for
            own_cpu_s = _cpu_seconds() - cpu0
            summary = _write_results(spec, out, results, models, host, started, time.monotonic() - t0, interrupted,
                                     installers, own_cpu_s, backend="lab" if backend is None else backend.name,
                                     pauses_apply=None if backend is None else
                                     {r.mechanism: backend.pauses_apply(r.mechanism) for r in results})
        finally:
            signal.signal(signal.SIGINT, restore)
    return summary


def _cpu_seconds() -> float:
    """CPU time of this process and of every child it has waited for (the labs' processes)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _own_load(host_summary: dict, own_cpu_s: float) -> None:
    """This run's own share of the CPUs (the pause watchers' own CPU left out) beside the
    CPUs' busy share: what is left is other programs' load."""
    load = host_summary["load"]
    capacity = host_summary["seconds"] * host_summary["monitor"]["cpus"]
    ours = max(0.0, own_cpu_s - host_summary["monitor"]["watcher_cpu_s"]) / capacity if capacity else None
    load["ours_fraction"] = None if ours is None else round(ours, 4)
    busy = load.get("busy_fraction")
    load["others_fraction"] = None if ours is None or busy is None else round(max(0.0, busy - ours), 4)


def _write_results(spec, out: Path, results: list[MechanismResult], models: dict, host: PauseMonitor,
                   started: str, duration_s: float, interrupted: bool, installers: dict | None = None,
                   own_cpu_s: float = 0.0, backend: str = "lab", pauses_apply: dict | None = None) -> dict:
    """``pauses_apply``: per mechanism whether this machine's pause monitor speaks for the
    nodes' times (None: always, a lab on this machine); where it does not, no move is judged
    undisturbed or not (machines of an inventory with clocks of their own)."""
    rows, timelines, mechanisms = [], {}, {}
    for r in results:
        judged = pauses_apply is None or pauses_apply.get(r.mechanism, False)
        bias = path_bias(r, r.params or spec.params, host)
        r_rows, r_timelines = metric_rows(r, models[r.mechanism], bias, host if judged else None)
        rows += r_rows
        timelines[r.mechanism] = r_timelines
        mechanisms[r.mechanism] = _mechanism_summary(r, r_rows, r_timelines, models[r.mechanism], bias)
        mechanisms[r.mechanism]["pauses_judged"] = judged
        installer = (installers or {}).get(r.mechanism)
        if installer is not None:  # what pushing the keys cost per lab
            mechanisms[r.mechanism]["key_push_s"] = round(sum(p.seconds for p in installer.pushes), 2)
    _write_metrics(out, rows)
    host_summary = host.summary() if host.started_mono_ns else None
    if host_summary is not None:
        _own_load(host_summary, own_cpu_s)
    (out / "host.json").write_text(json.dumps({
        "summary": host_summary,
        "pauses": [{"cpu": p.cpu, "mono_start_ns": p.mono_start, "mono_end_ns": p.mono_end,
                    "real_start_ns": p.real_start, "real_end_ns": p.real_end} for p in host.pauses],
    }, indent=1))
    medians = [mechanisms[m]["coa_to_ba_undisturbed_ms"]["median"] for m in MECHANISMS if m in mechanisms]
    summary = {
        "started": started,
        "duration_s": round(duration_s, 1),
        "interrupted": interrupted,
        "backend": backend,  # "lab": Mininet labs on this machine; "hosts": machines of an inventory
        "delay_backend": next((r.delay_backend for r in results if r.delay_backend), None),
        "model_ms": models,
        "keep_warm_ms": spec.keep_warm_ms,  # the agents' (0: off)
        "host": host_summary,
        "mechanisms": mechanisms,
        # precomputed < rr < rr-scratch on the undisturbed medians; None: not all three measured
        # or one without an undisturbed move
        "ordered": medians[0] < medians[1] < medians[2] if len(medians) == 3 and None not in medians else None,
    }
    summary["ok"] = bool(results) and not interrupted and all(m["ok"] for m in mechanisms.values())
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _plot(out / "handover.png", rows, timelines, summary)
    (out / "report.md").write_text(_report(spec, summary, rows))
    return summary


def _mechanism_summary(result: MechanismResult, rows: list[dict], timelines: list, model: float, bias: dict) -> dict:
    measured = [r for r in rows if r["coa_to_ba_ms"] is not None]
    clean = [r for r in measured if r["undisturbed"]]
    basis = clean or measured
    writes = _median([r["durable_writes_ms"] for r in clean])
    undisturbed = _quantiles([r["coa_to_ba_ms"] for r in clean])
    target = None if writes is None else round(model + writes, 3)
    tolerance = round(TOLERANCE_REL * model + TOLERANCE_ABS_MS[result.mechanism], 3)
    phases: dict[str, list[float]] = {}
    phase_writes: dict[str, list[float]] = {}
    basis_ids = {id(r) for r in basis}
    for row, tl in timelines:
        if id(row) in basis_ids:
            for ph in tl.phases:
                phases.setdefault(ph.name, []).append(ph.ms)
                phase_writes.setdefault(ph.name, []).append(ph.writes_ns / 1e6)
    lost = [r["probes_lost"] for r in rows if r["probes_lost"] is not None]
    s = result.summary()
    return {
        "label": LABELS[result.mechanism],
        "ok": s["ok"], "bound": s["bound"], "error": s["error"], "interrupted": s["interrupted"],
        "moves": len(measured),
        "undisturbed_moves": len(clean),
        "coa_to_ba_ms": _quantiles([r["coa_to_ba_ms"] for r in measured]),
        "coa_to_ba_undisturbed_ms": undisturbed,
        "model_ms": model,
        "ratio": None if undisturbed["median"] is None else round(undisturbed["median"] / model, 3),
        "phases_ms": {name: _median(v) for name, v in phases.items()},
        "phase_durable_writes_ms": {name: _median(v) for name, v in phase_writes.items() if any(v)},
        "phases_basis": "undisturbed moves" if clean else "all moves (none undisturbed)",
        "excess_ms": {term[:-3]: _median([r[term] for r in basis]) for term in EXCESS_TERMS},
        "unexplained_ms": _median([r["unexplained_ms"] for r in basis]),
        "durable_writes_ms": writes,
        "target_ms": target,
        "tolerance_ms": tolerance,
        "within_target": None if target is None or undisturbed["median"] is None
        else abs(undisturbed["median"] - target) <= tolerance,
        "probes_lost": sum(lost) if lost else None,
        "probe_gap_ms": _quantiles([r["probe_gap_ms"] for r in basis if r["probe_gap_ms"] is not None]),
        "move_to_coa_ms": _median([r["move_to_coa_ms"] for r in measured]),
        "path_bias": bias,
        "delay_backend": result.delay_backend,
        "bring_up_s": result.bring_up_s,
        "mh_types": result.mh_types,
        "bad_verdicts": result.bad_verdicts,
        "capture_drops": result.capture_drops,
    }


METRIC_FIELDS = ["mechanism", "move", "to", "careof", "move_to_ra_ms", "move_to_coa_ms", "move_to_ba_ms",
                 "coa_to_ba_ms", "model_ms", "paused_ms", "undisturbed", *[f"{p}_ms" for p in POINTS],
                 *EXCESS_TERMS, "probes_lost", "probe_gap_ms", "chain", "missing", "cn_binding_ok"]


def _write_metrics(out: Path, rows: list[dict]) -> None:
    (out / "metrics.json").write_text(json.dumps(rows, indent=1))
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _plot(path: Path, rows: list[dict], timelines: dict, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mechanisms = [m for m in MECHANISMS if m in summary["mechanisms"]]
    fig = plt.figure(figsize=(15, 2.0 + 1.9 * max(1, len(mechanisms))))
    grid = fig.add_gridspec(max(1, len(mechanisms)), 2, width_ratios=[1, 1.6])
    _plot_moves(fig.add_subplot(grid[:, 0]), rows, mechanisms, summary)
    for i, m in enumerate(mechanisms):
        _plot_timeline(fig.add_subplot(grid[i, 1]), m, summary["mechanisms"][m], legend=i == len(mechanisms) - 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_moves(ax, rows: list[dict], mechanisms: list[str], summary: dict) -> None:
    positions = list(range(1, len(mechanisms) + 1))
    for pos, m in zip(positions, mechanisms):
        for undisturbed, style in ((True, dict(color="tab:blue", label="undisturbed")),
                                   (False, dict(color="tab:gray", marker="x",
                                                label=f"host paused > {UNDISTURBED_SHARE:.0%} of the model"))):
            d = [r["coa_to_ba_ms"] for r in rows if r["mechanism"] == m and r["coa_to_ba_ms"] is not None
                 and bool(r["undisturbed"]) == undisturbed]
            ax.scatter([pos] * len(d), d, s=14, alpha=0.7, **(style if pos == 1 else {**style, "label": None}))
        ms = summary["mechanisms"][m]
        ax.hlines(ms["model_ms"], pos - 0.35, pos + 0.35, colors="red", linestyles="dashed",
                  label="model" if pos == 1 else None)
        if ms["target_ms"] is not None:
            ax.hlines(ms["target_ms"], pos - 0.35, pos + 0.35, colors="darkred", linestyles="dotted",
                      label="model + durable writes" if pos == 1 else None)
    ax.set_yscale("log")
    ax.set_xticks(positions, [SHORT[m] for m in mechanisms])
    ax.set_xlim(0.4, len(mechanisms) + 0.6)
    ax.set_ylabel("usable CoA to BA from the CN (ms, log scale)")
    ax.set_title("CoA-to-BA per move")
    ax.legend(loc="upper left", fontsize=8)


def _plot_timeline(ax, mechanism: str, ms: dict, legend: bool) -> None:
    """The median of each phase of the critical path, stacked in order (durable writes
    hatched inside the processing they belong to), against the model."""
    writes = ms.get("phase_durable_writes_ms", {})
    x = 0.0
    for name, value in ms["phases_ms"].items():
        if value is None:
            continue
        kind = PHASE_KINDS.get(name.split(":")[0], "net")
        ax.barh(0, value, left=x, color=KIND_COLOURS[kind], edgecolor="white", height=0.6, label=KIND_LABELS[kind])
        if value >= 0.07 * max(ms["model_ms"], 1):
            label = name.split(": ", 1)[-1].replace(" on the wire", "").replace(" (tunnelled)", "")
            ax.text(x + value / 2, 0, label, ha="center", va="center", fontsize=6.5, color="white",
                    rotation=90 if value < 0.14 * ms["model_ms"] else 0)
        w = min(value, writes.get(name) or 0.0)
        if w > 0:
            ax.barh(0, w, left=x + value - w, color="none", edgecolor="black", hatch="////", height=0.6,
                    linewidth=0, label="durable writes")
        x += value
    ax.axvline(ms["model_ms"], color="red", linestyle="dashed", label="model")
    if ms["target_ms"] is not None:
        ax.axvline(ms["target_ms"], color="darkred", linestyle="dotted", label="model + durable writes")
    ax.set_xlim(0, max(x, ms["model_ms"]) * 1.08)
    ax.set_yticks([])
    ax.set_title(f"{LABELS[mechanism]}: {x:.1f} ms (median phases), model {ms['model_ms']:g} ms "
                 f"(unexplained {_fmt(ms['unexplained_ms'], 2)} ms)", fontsize=9)
    ax.set_xlabel("ms from the usable CoA (median phases, undisturbed moves)", fontsize=8)
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=4,
                  fontsize=8)


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _persistence_text(value: str | dict) -> str:
    return value if isinstance(value, str) else f"reserve: {value['reserve']}"


def _report(spec: HandoverSpec, summary: dict, rows: list[dict]) -> str:
    mechanisms = summary["mechanisms"]
    lines = [
        "# Handover latency: RFC 4449 precomputed Kbm against return routability",
        "",
        f"Moves per mechanism: {spec.moves}. Lab parameters: {json.dumps(spec.params) if spec.params else 'defaults'}. "
        f"Sequence-number persistence: {_persistence_text(spec.persistence)}. "
        + (f"The agents rehearsed their per-BU code after {spec.keep_warm_ms:g} ms of idleness (keep_warm_ms). "
           if spec.keep_warm_ms else "")
        + f"Link delay: {summary['delay_backend'] or '-'}. Duration {summary['duration_s']:g} s."
        + (" **Interrupted (Ctrl-C): the figures cover the moves made.**" if summary["interrupted"] else ""),
        "",
    ]
    if summary["host"]:
        lines += [describe(summary["host"]) + ".", "",
                  f"A move is *undisturbed* when host pauses (or a CPU held by the kernel) took at most "
                  f"{UNDISTURBED_SHARE:.0%} of its model's time within its usable-CoA-to-BA window (`paused_ms` in "
                  "`metrics.csv`; for precomputed and rr at the default delays: no pause at all); the verdicts below "
                  "are judged on those. Our own CPU load is a property of the lab, shown here, never counted as a "
                  "pause.", ""]
    unjudged = [m["label"] for m in mechanisms.values() if not m.get("pauses_judged", True)]
    if unjudged:
        lines += ["**The machines' clocks are not this controller's** (" + ", ".join(unjudged) + "): its pause "
                  "monitor does not speak for them, so no move is judged undisturbed and there is no verdict against "
                  "the model; the figures are over all moves (docs/multihost.md).", ""]
    lines += [
        "| mechanism | ok | moves | undisturbed | CoA-to-BA median / p95 (ms) | undisturbed median / p95 (ms) "
        "| model (ms) | ratio | model + durable writes (ms) | within 10 % + abs | unexplained (ms) | probes lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in mechanisms.items():
        a, u = m["coa_to_ba_ms"], m["coa_to_ba_undisturbed_ms"]
        within = "-" if m["within_target"] is None else ("yes" if m["within_target"] else "**no**")
        lines.append(
            f"| {m['label']} | {'yes' if m['ok'] else '**no**'} | {m['moves']} | {m['undisturbed_moves']} | "
            f"{_fmt(a['median'])} / {_fmt(a['p95'])} | {_fmt(u['median'])} / {_fmt(u['p95'])} | {m['model_ms']:g} | "
            f"{_fmt(m['ratio'], 2)} | {_fmt(m['target_ms'])} ± {m['tolerance_ms']:g} | {within} | "
            f"{_fmt(m['unexplained_ms'], 2)} | {m['probes_lost'] if m['probes_lost'] is not None else '-'} |")
    if len(mechanisms) == 3:
        verdict = {True: "yes", False: "**no**", None: "not judged (a mechanism had no undisturbed move)"}
        lines += ["", f"precomputed < rr < rr-scratch (undisturbed medians): {verdict[summary['ordered']]}."]
    lines += ["", "## Where the time goes", "",
              "Measured minus model, split (medians over the undisturbed moves, ms). MN processing: from the usable "
              "CoA or a packet's arrival to the MN's next packet on the wire; CN turnaround: from a packet's arrival "
              "at the CN (kernel stamp) to its answer on the CN's wire; durable writes: the sequence-number writes on "
              "the path, taken out of those; delay-line bias: pings on the same paths in the same run, each way from "
              "one end's capture to the other's, minus the configured delays, times the round trips on the path; "
              "host pauses: the time the host paused a CPU (or the kernel held one) within the move's window, "
              "credited up to what is left (a pause may have delayed nothing on the path, never more than itself).",
              "",
              "| mechanism | measured - model | MN processing | CN turnaround | HA processing | durable writes "
              "| delay-line bias | host pauses | unexplained |", "|---|---|---|---|---|---|---|---|---|"]
    for name, m in mechanisms.items():
        e = m["excess_ms"]
        u = m["coa_to_ba_undisturbed_ms"]["median"] or m["coa_to_ba_ms"]["median"]
        lines.append(f"| {SHORT[name]} | {_fmt(None if u is None else u - m['model_ms'], 2)} | "
                     + " | ".join(_fmt(e[k], 2) for k in ("mn_processing", "cn_turnaround", "ha_processing",
                                                          "durable_writes", "delay_line_bias", "host_pauses",
                                                          "unexplained")) + " |")
    lines += ["", "Delay-line bias per round trip, by path (pings captured at both ends, this run): "
              + "; ".join(f"{name}: " + ", ".join(f"{p} {_fmt(b['bias_ms'], 3)} ms ({b['clean_samples']} pings)"
                                                  for p, b in m["path_bias"].items())
                          for name, m in mechanisms.items()) + "."]
    lines += ["", "## Timelines (median phases, ms)", ""]
    for name, m in mechanisms.items():
        lines += [f"**{m['label']}** ({m['phases_basis']}; model {m['model_ms']:g} ms; probes: "
                  f"gap old path -> new path median {_fmt(m['probe_gap_ms']['median'])} ms, "
                  f"{m['probes_lost'] if m['probes_lost'] is not None else '-'} lost over {m['moves']} moves):", ""]
        t = 0.0
        for phase, value in m["phases_ms"].items():
            if value is None:
                continue
            t += value
            lines.append(f"- {phase}: {value:.2f} (at {t:.1f})")
        lines.append("")
    pushes = {m["label"]: m.get("key_push_s") for m in mechanisms.values() if m.get("key_push_s") is not None}
    if pushes:
        lines += ["Keys (MN-HA, and the preconfigured data of the precomputed run) pushed into the nodes with "
                  "Ansible (playbooks/keys.yml through ansible-runner) before the agents started: "
                  + ", ".join(f"{n} {_fmt(t)} s" for n, t in pushes.items()) + ".", ""]
    lines += ["![CoA-to-BA per move, and per mechanism the critical path against the model](handover.png)", "",
              "## Messages and authentication", "",
              "Mobility Header messages on the MN's link, and the verdicts on BU and BA authentication "
              "(Binding Authorization Data with a CN, RFC 4285 MN-HA with the HA; no-key: RR, whose keys are not kept):", ""]
    for name, m in mechanisms.items():
        types = ", ".join(f"{k} {v}" for k, v in sorted(m["mh_types"].items())) or "none"
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(m["bad_verdicts"].items())) or "none"
        lines.append(f"- {m['label']}: {types}; {verdicts}")
        if m["error"]:
            lines.append(f"  - error: {m['error']}")
    lines += [
        "",
        "Model (docs/protocol.md section 7, from the link delays, network only): "
        + "; ".join(f"{SHORT[k]} {v:g} ms" for k, v in summary["model_ms"].items()) + ".",
        "",
        "Files: `metrics.csv`, `metrics.json` (every move's points and split), `summary.json`, `host.json` "
        "(the pause monitor's figures and every pause), and per mechanism the lab run (`events/`, pcaps, "
        "`lab.json`, `logs/`).",
        "",
    ]
    return "\n".join(lines)

