"""The handover latency experiment: RFC 4449 precomputed Kbm against return routability.

For each mechanism a fresh ``handover`` lab runs the agents, the MN moves AR1 <-> AR2
``moves`` times, and per move the event logs give move-to-RA, move-to-usable-CoA and
move-to-BA (the CN's BA received by the MN). CoA-to-BA is compared with the analytical
model of docs/protocol.md section 7, computed from the lab's link delays.

A stall monitor (testbed/lab/stalls.py) runs throughout: each move records how long the
host kept a CPU of this machine paused between the usable CoA and the BA (``paused_ms``),
and the summary gives the CoA-to-BA median over all moves and over the undisturbed ones, so
that a host pausing the VM is not mistaken for protocol latency.

The results directory holds ``spec.json``, ``metrics.csv``/``metrics.json`` (one row per
move), ``summary.json``, ``handover.png``, ``report.md``, and per mechanism the lab's run
directory (event logs, pcaps, lab.json, daemon logs). No key material is ever written there.
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed.lab.handover_check import MechanismResult, run_mechanism
from testbed.provision.labkeys import AnsibleKeys
from testbed.lab.params import parse_delay_ms
from testbed.lab.stalls import StallMonitor
from topologies.handover import DELAY_PARAMS

DEFAULT_MOVES = 10
MECHANISMS = ("rr", "precomputed")
LABELS = {"rr": "return routability (RFC 6275)", "precomputed": "precomputed Kbm (RFC 4449)"}


@dataclass
class HandoverSpec:
    moves: int = DEFAULT_MOVES
    mechanisms: tuple[str, ...] = MECHANISMS
    params: dict = field(default_factory=dict)  # lab parameters, e.g. {"core_ha_delay": "50ms"}


def model_ms(params: dict) -> dict[str, float]:
    """docs/protocol.md section 7, from the handover topology's one-way delays (processing ignored)."""
    delays = {name: parse_delay_ms(params.get(name, spec.default)) for name, spec in DELAY_PARAMS.items()}
    access, ar_core = delays["access_delay"], delays["ar_core_delay"]
    core_cn, core_ha = delays["core_cn_delay"], delays["core_ha_delay"]
    rtt_mn_cn = 2 * (access + ar_core + core_cn)
    rtt_mn_ha = 2 * (access + ar_core + core_ha)
    rtt_ha_cn = 2 * (core_ha + core_cn)
    return {
        "precomputed": rtt_mn_cn,
        "rr": 2 * rtt_mn_cn,  # a valid home keygen token: CoTI/CoT, then BU/BA
        "rr_from_scratch": max(2 * rtt_mn_ha + rtt_ha_cn, rtt_mn_cn) + rtt_mn_cn,
    }


def metric_rows(result: MechanismResult, stalls: StallMonitor | None = None) -> list[dict]:
    rows = []
    for m in result.moves:
        coa_to_ba = None if m.move_to_ba_ms is None or m.move_to_coa_ms is None else m.move_to_ba_ms - m.move_to_coa_ms
        paused = None
        if stalls is not None and coa_to_ba is not None and m.t_move_ns:
            start = m.t_move_ns + int(m.move_to_coa_ms * 1e6)
            paused = stalls.paused_ms_monotonic(start, m.t_move_ns + int(m.move_to_ba_ms * 1e6))
        rows.append({
            "mechanism": result.mechanism, "move": m.index, "to": m.to, "careof": m.careof,
            "move_to_ra_ms": m.move_to_ra_ms, "move_to_coa_ms": m.move_to_coa_ms,
            "move_to_ba_ms": m.move_to_ba_ms, "coa_to_ba_ms": coa_to_ba, "paused_ms": paused,
            "cn_binding_ok": m.cn_binding_ok,
        })
    return rows


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


def run_handover_experiment(spec: HandoverSpec, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(asdict(spec), indent=1))
    model = model_ms(spec.params)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    installers = {m: AnsibleKeys(record=out / m / "ansible") for m in spec.mechanisms}  # keys pushed with Ansible
    with StallMonitor() as stalls:
        results = [run_mechanism(m, moves=spec.moves, run_dir=out / m, params=spec.params, keys=installers[m])
                   for m in spec.mechanisms]
    rows = [row for r in results for row in metric_rows(r, stalls)]
    _write_metrics(out, rows)
    summary = {
        "started": started,
        "model_ms": model,
        "machine_pauses": stalls.summary(),
        "mechanisms": {r.mechanism: _mechanism_summary(r, [x for x in rows if x["mechanism"] == r.mechanism], model)
                       for r in results},
    }
    for m, installer in installers.items():  # what pushing the keys cost per lab
        summary["mechanisms"][m]["key_push_s"] = round(sum(p.seconds for p in installer.pushes), 2)
    summary["ok"] = all(v["ok"] for v in summary["mechanisms"].values())
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _plot(out / "handover.png", rows, model, spec.mechanisms)
    (out / "report.md").write_text(_report(spec, summary, rows))
    return summary


def _mechanism_summary(result: MechanismResult, rows: list[dict], model: dict) -> dict:
    clean = [x for x in rows if x["paused_ms"] == 0]
    return {
        **{k: v for k, v in result.summary().items() if k != "run_dir"},
        "median_coa_to_ba_ms": _median(rows, "coa_to_ba_ms"),
        "undisturbed_moves": len(clean),
        "median_coa_to_ba_undisturbed_ms": _median(clean, "coa_to_ba_ms"),
        "model_coa_to_ba_ms": model.get(result.mechanism),
    }


def _write_metrics(out: Path, rows: list[dict]) -> None:
    (out / "metrics.json").write_text(json.dumps(rows, indent=1))
    fields = ["mechanism", "move", "to", "careof", "move_to_ra_ms", "move_to_coa_ms", "move_to_ba_ms",
              "coa_to_ba_ms", "paused_ms", "cn_binding_ok"]
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _plot(path: Path, rows: list[dict], model: dict, mechanisms: tuple[str, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    data = [[r["coa_to_ba_ms"] for r in rows if r["mechanism"] == m and r["coa_to_ba_ms"] is not None] for m in mechanisms]
    positions = list(range(1, len(mechanisms) + 1))
    if any(data):
        ax.boxplot([d or [float("nan")] for d in data], positions=positions, widths=0.5)
        for pos, m in zip(positions, mechanisms):
            for undisturbed, style in ((True, dict(color="tab:blue", label="no pause of the machine")),
                                       (False, dict(color="tab:gray", marker="x", label="the host paused the machine"))):
                d = [r["coa_to_ba_ms"] for r in rows if r["mechanism"] == m and r["coa_to_ba_ms"] is not None
                     and (r.get("paused_ms") == 0) == undisturbed]
                ax.scatter([pos] * len(d), d, s=14, alpha=0.7, **(style if pos == 1 else {**style, "label": None}))
    for pos, m in zip(positions, mechanisms):
        if m in model:
            ax.hlines(model[m], pos - 0.35, pos + 0.35, colors="red", linestyles="dashed",
                      label="analytical model" if pos == 1 else None)
    ax.set_xticks(positions, [LABELS.get(m, m) for m in mechanisms])
    ax.set_ylabel("usable CoA to BA from the CN (ms)")
    ax.set_title("Handover signalling latency per move")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _report(spec: HandoverSpec, summary: dict, rows: list[dict]) -> str:
    lines = [
        "# Handover latency: RFC 4449 precomputed Kbm against return routability",
        "",
        f"Moves per mechanism: {spec.moves}. Lab parameters: {json.dumps(spec.params) if spec.params else 'defaults'}.",
        "",
        "| mechanism | bound | moves ok | median move-to-RA (ms) | median move-to-CoA (ms) | median CoA-to-BA (ms) "
        "| undisturbed moves | their median CoA-to-BA (ms) | model CoA-to-BA (ms) | median move-to-BA (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in summary["mechanisms"].items():
        ok_moves = sum(1 for r in rows if r["mechanism"] == name and r["cn_binding_ok"])
        lines.append(
            f"| {LABELS.get(name, name)} | {m['bound']} | {ok_moves}/{m['moves']} | {_fmt(m['median_move_to_ra_ms'])} | "
            f"{_fmt(m['median_move_to_coa_ms'])} | {_fmt(m['median_coa_to_ba_ms'])} | {m['undisturbed_moves']} | "
            f"{_fmt(m['median_coa_to_ba_undisturbed_ms'])} | {_fmt(m['model_coa_to_ba_ms'])} | {_fmt(m['median_move_to_ba_ms'])} |"
        )
    pauses = summary.get("machine_pauses") or {}
    if pauses:
        lines += ["", f"The host paused this machine's CPUs {pauses['pauses']} times during the run "
                      f"({pauses['paused_fraction']:.0%} of the time, longest {pauses['longest_ms']} ms). "
                      "Undisturbed moves are those no pause overlapped between the usable CoA and the BA; "
                      "`paused_ms` in `metrics.csv` gives each move's paused time."]
    pushes = {LABELS.get(n, n): m.get("key_push_s") for n, m in summary["mechanisms"].items()}
    lines += ["", "Keys (MN-HA, and the preconfigured data of the precomputed run) pushed into the nodes with "
              "Ansible (playbooks/keys.yml through ansible-runner) before the agents started: "
              + ", ".join(f"{n} {_fmt(s)} s" for n, s in pushes.items()) + "."]
    lines += ["", "Mobility Header messages on the MN's link, and the verdicts on BU and BA authentication "
              "(Binding Authorization Data with a CN, RFC 4285 MN-HA with the HA; no-key: RR, whose keys are not kept):", ""]
    for name, m in summary["mechanisms"].items():
        types = ", ".join(f"{k} {v}" for k, v in sorted(m["mh_types"].items())) or "none"
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(m["bad_verdicts"].items())) or "none"
        lines.append(f"- {LABELS.get(name, name)}: {types}; {verdicts}")
        if m["error"]:
            lines.append(f"  - error: {m['error']}")
    lines += [
        "",
        f"Model (docs/protocol.md section 7, from the link delays): precomputed RTT(MN,CN) = {summary['model_ms']['precomputed']:.1f} ms; "
        f"return routability with a valid home token 2 x RTT(MN,CN) = {summary['model_ms']['rr']:.1f} ms; "
        f"from scratch {summary['model_ms']['rr_from_scratch']:.1f} ms.",
        "",
        "![CoA-to-BA per move](handover.png)",
        "",
        "Files: `metrics.csv`, `metrics.json`, `summary.json`, and per mechanism the lab run "
        "(`events/`, pcaps, `lab.json`, `logs/`).",
        "",
    ]
    return "\n".join(lines)
