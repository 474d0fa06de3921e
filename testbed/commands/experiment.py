"""``testbed experiment handover``: the handover latency experiment (the main job).
``testbed experiment security``: attack scenarios against our agents, with verdicts."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from testbed.errors import ConfigError, TestbedError

EXPERIMENTS = ("handover", "security", "fuzz", "faults")


def add_parser(sub) -> None:
    p = sub.add_parser("experiment", help="run a scripted experiment (handover latency, security scenarios)")
    p.add_argument("name", choices=EXPERIMENTS, help="which experiment")
    p.add_argument("--moves", type=int, default=10, help="moves AR1 <-> AR2 per mechanism (default 10)")
    p.add_argument("--mechanism", action="append", choices=("rr", "precomputed"),
                   help="only this mechanism (repeatable; default both)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="lab parameter of the handover topology, e.g. core_ha_delay=50ms")
    p.add_argument("--count", type=int, default=100_000, help="fuzz: packets per agent (default 100,000)")
    p.add_argument("--rate", type=float, default=4000.0, help="fuzz: packets a second (default 4,000)")
    p.add_argument("--seed", type=int, default=1, help="fuzz, faults: the run's random seed (default 1)")
    p.add_argument("--kills", type=int, default=20, help="faults: SIGKILLs during BU floods (default 20)")
    p.add_argument("--scenario", action="append", metavar="NAME",
                   help="security: only this scenario (repeatable; names as in the report)")
    p.add_argument("--weaken", action="append", default=[], metavar="NAME",
                   help="security, TEST ONLY: run the CN with this defence off (testbed/mip6/weakening.py)")
    p.add_argument("--out", metavar="DIR", help="results directory (default results/<name>-<time>); must not exist")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.name == "security":
        return run_security_command(args)
    if args.name == "fuzz":
        return run_fuzz_command(args)
    if args.name == "faults":
        return run_faults_command(args)
    from testbed.experiments.handover import HandoverSpec, run_handover_experiment
    from testbed.lab.params import parse_assignments, parse_params
    from topologies.handover import HandoverTopo

    if not 1 <= args.moves <= 1000:
        raise ConfigError(f"--moves {args.moves}: expected 1..1000")
    params = parse_assignments(args.param)
    parse_params(HandoverTopo.PARAMS, params, "--param")  # refuse unknown names and bad values now
    out = Path(args.out) if args.out else Path("results") / f"handover-{time.strftime('%Y%m%d-%H%M%S')}"
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


def run_security_command(args) -> int:
    from testbed.experiments.security.run import run_security, scenario_names
    from testbed.mip6.weakening import CN

    names = scenario_names()
    for name in args.scenario or ():
        if name not in names:
            raise ConfigError(f"--scenario {name}: no such scenario (known: {', '.join(names)})")
    for name in args.weaken:
        if name not in CN:
            raise ConfigError(f"--weaken {name}: not a weakening of our CN (known: {', '.join(sorted(CN))})")
    out = Path(args.out) if args.out else Path("results") / f"security-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; refusing to overwrite results")
    if os.geteuid() != 0:
        raise TestbedError("the security experiment builds network namespaces: run it as root")

    def progress(o) -> None:
        if not args.json:
            print(f"{o.verdict:>9}  {o.name:30} {o.requirement:10} {o.detail}"[:220], flush=True)

    summary = run_security(out, only=set(args.scenario) if args.scenario else None, weaken=tuple(args.weaken),
                           progress=progress)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        c = summary["counts"]
        print(f"{c['pass']} passed, {c['expected']} expected, {c['fail']} failed, {c['error']} errors; "
              f"results: {out} (report.md, summary.json, junit.xml)")
    return 0 if summary["ok"] else 1


def run_fuzz_command(args) -> int:
    from testbed.experiments.fuzzing import run_fuzz

    if not 1 <= args.count <= 10_000_000:
        raise ConfigError(f"--count {args.count}: expected 1..10000000")
    if not 10 <= args.rate <= 100_000:
        raise ConfigError(f"--rate {args.rate:g}: expected 10..100000 packets a second")
    out = Path(args.out) if args.out else Path("results") / f"fuzz-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; refusing to overwrite results")
    if os.geteuid() != 0:
        raise TestbedError("the fuzz experiment builds network namespaces: run it as root")

    def progress(o) -> None:
        if not args.json:
            print(f"{o.verdict:>6}  {o.name:8} {o.detail}"[:300], flush=True)

    summary = run_fuzz(out, count=args.count, rate=args.rate, seed=args.seed, progress=progress)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        print(f"results: {out} (report.md, summary.json, junit.xml)")
    return 0 if summary["ok"] else 1


def run_faults_command(args) -> int:
    from testbed.experiments.faults import run_faults

    if not 1 <= args.kills <= 1000:
        raise ConfigError(f"--kills {args.kills}: expected 1..1000")
    out = Path(args.out) if args.out else Path("results") / f"faults-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; refusing to overwrite results")
    if os.geteuid() != 0:
        raise TestbedError("the faults experiment builds network namespaces: run it as root")

    def progress(o) -> None:
        if not args.json:
            print(f"{o.verdict:>6}  {o.name:20} {o.detail}"[:400], flush=True)

    from testbed.experiments.faults import FAULTS
    from testbed.mip6.weakening import CN

    names = [f.id for f in FAULTS]
    for name in args.scenario or ():
        if name not in names:
            raise ConfigError(f"--scenario {name}: no such fault scenario (known: {', '.join(names)})")
    for name in args.weaken:
        if name not in CN:
            raise ConfigError(f"--weaken {name}: not a weakening of our CN (known: {', '.join(sorted(CN))})")
    summary = run_faults(out, kills=args.kills, seed=args.seed, only=set(args.scenario) if args.scenario else None,
                         weaken=tuple(args.weaken), progress=progress)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        print(f"results: {out} (report.md, summary.json, junit.xml)")
    return 0 if summary["ok"] else 1
