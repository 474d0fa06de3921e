"""``testbed experiment handover``: the handover latency experiment (the main job)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from testbed.errors import ConfigError, TestbedError

EXPERIMENTS = ("handover",)


def add_parser(sub) -> None:
    p = sub.add_parser("experiment", help="run a scripted experiment (handover latency)")
    p.add_argument("name", choices=EXPERIMENTS, help="which experiment")
    p.add_argument("--moves", type=int, default=10, help="moves AR1 <-> AR2 per mechanism (default 10)")
    p.add_argument("--mechanism", action="append", choices=("rr", "precomputed"),
                   help="only this mechanism (repeatable; default both)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="lab parameter of the handover topology, e.g. core_ha_delay=50ms")
    p.add_argument("--out", metavar="DIR", help="results directory (default results/handover-<time>); must not exist")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from testbed.experiments.handover import HandoverSpec, run_handover_experiment
    from testbed.lab.params import parse_assignments, parse_params
    from topologies.handover import HandoverTopo

    if not 1 <= args.moves <= 1000:
        raise ConfigError(f"--moves {args.moves}: expected 1..1000")
    params = parse_assignments(args.param)
    parse_params(HandoverTopo.PARAMS, params, "--param")  # refuse unknown names and bad values now
    # Absolute once, here: the agents resolve relative paths against their configuration's directory.
    out = Path(os.path.abspath(args.out or f"results/handover-{time.strftime('%Y%m%d-%H%M%S')}"))
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; refusing to overwrite results")
    if os.geteuid() != 0:
        raise TestbedError("the handover experiment builds network namespaces: run it as root")
    spec = HandoverSpec(moves=args.moves, mechanisms=tuple(args.mechanism or ("rr", "precomputed")), params=params)
    summary = run_handover_experiment(spec, out)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_table(summary, out)
    return 0 if summary["ok"] else 1


def _print_table(summary: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Handover latency, medians in ms (model: docs/protocol.md section 7)")
    for column in ("mechanism", "ok", "moves", "move→CoA", "CoA→BA", "undisturbed", "their CoA→BA", "model", "move→BA"):
        table.add_column(column, justify="left" if column == "mechanism" else "right")
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    for name, m in summary["mechanisms"].items():
        table.add_row(name, "yes" if m["ok"] else "NO", str(m["moves"]), fmt(m["median_move_to_coa_ms"]),
                      fmt(m["median_coa_to_ba_ms"]), str(m["undisturbed_moves"]),
                      fmt(m["median_coa_to_ba_undisturbed_ms"]), fmt(m["model_coa_to_ba_ms"]),
                      fmt(m["median_move_to_ba_ms"]))
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(table)
    pauses = summary.get("machine_pauses") or {}
    if pauses.get("pauses"):
        console.print(f"the host paused this machine's CPUs {pauses['pauses']} times ({pauses['paused_fraction']:.0%} of "
                      f"the time, longest {pauses['longest_ms']} ms); 'undisturbed': moves no pause overlapped "
                      "between the usable CoA and the BA")
    pushes = [f"{name} {m['key_push_s']:.1f} s" for name, m in summary["mechanisms"].items() if m.get("key_push_s") is not None]
    if pushes:
        console.print("keys pushed with Ansible (keys.yml) per lab: " + ", ".join(pushes))
    for name, m in summary["mechanisms"].items():
        console.print(f"{name}: Mobility Header messages on the MN's link: "
                      + (", ".join(f"{k} {v}" for k, v in sorted(m["mh_types"].items())) or "none"))
        if m["error"]:
            console.print(f"{name}: error: {m['error']}")
    console.print(f"results: {out} (report.md, metrics.csv, handover.png)")
