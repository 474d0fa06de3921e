"""``testbed lab``: bring up a lab topology, self-test it, or clean up after crashed runs.

    testbed lab --topo handover [--param core_ha_delay=50ms ...]      # Mininet CLI on the lab
    testbed lab --topo NAME --test pingall|delay|move [--json]         # self-test, exit 0 if met
    testbed lab --topo handover --test handover [--json]               # agents bind and move per mechanism
    testbed lab clean [--dry-run]                                      # remove crashed runs' leftovers
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import Any

from testbed.errors import ConfigError

TESTS = ("pingall", "delay", "move", "handover")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "lab", help="run a lab topology (Mininet CLI), self-test it, or clean up crashed runs",
        description="Bring up a lab topology and open the Mininet CLI on it, or run a "
                    "self-test (--test), or remove what crashed runs left behind (clean).")
    p.add_argument("--topo", default="handover", metavar="NAME",
                   help="topology: handover (default) or corporate")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="topology or lab parameter (repeatable), e.g. core_ha_delay=50ms, "
                        "delay=10ms, n_mns=4, delay_backend=delayline; --list-params shows all")
    p.add_argument("--test", choices=TESTS, help="run a self-test instead of the CLI; exit 0: goal met, "
                   "1: goal missed, 3: inconclusive (host pauses, or other programs loading the CPUs, leave delays unjudgeable)")
    p.add_argument("--json", action="store_true", help="self-test figures as JSON on stdout")
    p.add_argument("--moves", type=int, metavar="N",
                   help="moves of --test move (default 20) and of --test handover per mechanism (default 1)")
    p.add_argument("--run-dir", metavar="DIR",
                   help="keep the run's files (lab.json, configs, logs, pcaps) in DIR "
                        "(default: a temporary directory, removed on exit)")
    p.add_argument("--list-params", action="store_true", help="list the topology's parameters")
    p.add_argument("-v", "--verbose", action="store_true", help="log the lab's steps")
    lab_sub = p.add_subparsers(dest="lab_command", metavar="{clean}")
    clean = lab_sub.add_parser("clean", help="remove what crashed lab runs left behind",
                               description="Remove interfaces, processes and files of lab runs "
                                           "whose process is gone (and nothing else).")
    clean.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    clean.add_argument("--orphans", action="store_true",
                       help="also remove tagged interfaces (m6<run id>...) that no state file "
                            "claims (only when no lab runs with another state directory)")
    clean.set_defaults(func=run_clean)
    p.set_defaults(func=run)


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("testbed: %(message)s"))
    logger = logging.getLogger("testbed.lab")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def _sigterm_as_interrupt() -> None:
    """SIGTERM ends the run like Ctrl-C (the lab cleans up). Only in this process: a forked
    child (a library's helper) that gets SIGTERM must just exit."""
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _parse_params(args) -> dict[str, str]:
    from testbed.lab.params import parse_assignments

    return parse_assignments(args.param, "--param")


def run(args) -> int:
    from testbed.lab.lab import LAB_PARAMS, Lab, resolve_topology
    from topologies import TOPOLOGIES

    if args.topo not in TOPOLOGIES:
        raise ConfigError(f"--topo {args.topo!r}: unknown topology (known: {', '.join(TOPOLOGIES)})")
    if args.moves is not None and args.moves < 1:
        raise ConfigError(f"--moves {args.moves}: must be at least 1")
    params = _parse_params(args)
    if args.run_dir:  # absolute once, here: node processes resolve relative paths elsewhere
        args.run_dir = os.path.abspath(args.run_dir)
    if args.list_params:
        specs = {**TOPOLOGIES[args.topo].param_specs(), **LAB_PARAMS}
        for name, spec in sorted(specs.items()):
            default = "-" if spec.default is None else spec.default
            print(f"{name:22} {spec.kind:9} default {default!s:8} {spec.help}")
        return 0
    resolve_topology(args.topo, params)  # validates every --param before anything starts
    if args.json and not args.test:
        raise ConfigError("--json needs --test")
    _setup_logging(args.verbose)
    _sigterm_as_interrupt()
    if args.test == "handover":
        return _handover_test(args, params)
    with Lab(args.topo, run_dir=args.run_dir, **params) as lab:
        if args.test is None:
            _print_summary(lab)
            lab.cli()
            return 0
        result = _run_test(lab, args)
        data = {"topology": args.topo, "run_id": lab.run_id, "params": lab.params,
                "delay_backend": lab.delay_backend,
                "features": [f.describe() for f in lab.features],
                "bring_up_s": round(lab.timings.get("up", 0.0), 3), **result.to_dict()}
    if args.json:
        print(json.dumps(data, indent=1, default=str))
    else:
        _print_result(data)
    if data["ok"]:
        return 0
    return EXIT_INCONCLUSIVE if data.get("inconclusive") else 1


EXIT_INCONCLUSIVE = 3  # the host paused the machine too often for a timing verdict


def _run_test(lab, args):
    from testbed.lab import selftest

    if args.test == "pingall":
        return selftest.pingall(lab)
    if args.test == "delay":
        return selftest.measure_delay(lab)
    return selftest.move_test(lab, count=args.moves or 20)


def _handover_test(args, params: dict) -> int:
    """Agents in a fresh handover lab per mechanism: bind, move, report (issue 4 item 8)."""
    import tempfile
    from pathlib import Path

    from testbed.lab.handover_check import run_handover_check

    if args.topo != "handover":
        raise ConfigError("--test handover runs on the handover topology")
    with tempfile.TemporaryDirectory(prefix="mip6-handover-") as tmp:
        root = Path(args.run_dir) if args.run_dir else Path(tmp)
        from testbed.provision.labkeys import AnsibleKeys

        results = run_handover_check(moves=args.moves or 1, run_root=root, params=params,
                                     keys=lambda run_dir: AnsibleKeys(record=run_dir / "ansible"))
        data = {"test": "handover", "ok": all(r.ok for r in results),
                "goal": "both mechanisms bind and every move re-binds at the CN",
                "mechanisms": [r.summary() | {"move_to_ba_ms": [m.move_to_ba_ms for m in r.moves]} for r in results]}
    if args.json:
        print(json.dumps(data, indent=1, default=str))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="handover self-test: agents in the handover lab")
        for column in ("mechanism", "bound", "moves", "move→BA ms", "Mobility Header messages"):
            table.add_column(column)
        for m in data["mechanisms"]:
            times = ", ".join("-" if t is None else f"{t:.1f}" for t in m["move_to_ba_ms"])
            types = ", ".join(f"{k} {v}" for k, v in sorted(m["mh_types"].items()))
            table.add_row(m["mechanism"], "yes" if m["bound"] else "NO", str(m["moves"]), times, types)
        console = Console()
        console.print(table)
        for m in data["mechanisms"]:
            if m["error"]:
                console.print(f"{m['mechanism']}: {m['error']}")
        console.print(("[green]goal met[/green]: " if data["ok"] else "[red]goal NOT met[/red]: ") + data["goal"])
    return 0 if data["ok"] else 1


def _print_summary(lab) -> None:
    from rich.console import Console
    from rich.table import Table

    plan = lab.addresses
    console = Console()
    table = Table(title=f"lab {lab.run_id}: {plan.topology} (run directory {lab.run_dir})")
    for column in ("node", "role", "interface", "address", "subnet", "delay ms"):
        table.add_column(column)
    for node in plan.nodes.values():
        for intf in sorted(node.interfaces.values(), key=lambda i: i.port):
            table.add_row(node.name, node.role, intf.name, intf.address or "SLAAC", intf.subnet,
                          f"{intf.delay_ms:g}" if intf.delay_ms else "")
    console.print(table)
    for mn, m in plan.mobiles.items():
        console.print(f"{mn}: home address {m.home_address}, home agent {m.home_agent}, "
                      f"on {lab.location(mn)}")
    console.print("Mininet CLI: e.g. 'mn ping -6 -c 3 " + plan.cn_address + "'; 'exit' ends the lab.")
    console.print(f"keys into its nodes from another shell: testbed keys push --lab {lab.run_id} --keys DIR --generate")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _print_result(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    test = data["test"]
    if test == "pingall":
        failed = [p for p in data["pairs"] if not p["ok"]]
        title = f"pingall on {data['topology']}: {data['sent']} node pairs, {data['lost']} lost"
        if failed:
            table = Table(title=title)
            for column in ("src", "dst", "address", "result"):
                table.add_column(column)
            for pair in failed:
                table.add_row(pair["src"], pair["dst"], pair["address"], "lost")
            console.print(table)
        else:
            console.print(title)
    elif test == "delay":
        table = Table(title=f"link RTT in ms on {data['topology']} (delay backend {data['backend']})")
        for column in ("link", "set", "median", "+/-", "mdev", "min", "clean", "rcvd", ""):
            table.add_column(column, justify="right", no_wrap=True)
        for link in data["links"]:
            verdict = "ok" if link["ok"] else ("?" if link["inconclusive"] else "FAIL")
            table.add_row(link["link"], _fmt(link["configured_rtt_ms"], 1), _fmt(link["median_ms"], 2),
                          _fmt(link["tolerance_ms"], 2), _fmt(link["mdev_ms"], 3),
                          _fmt(link["min_ms"], 2), f"{link['clean_samples']}/{link['samples']}",
                          f"{link['received']}/{link['sent']}", verdict)
        console.print(table)
        from testbed.lab.pauses import describe

        console.print(describe(data["host"]) + "; median and mdev are of the round trips no host pause "
                      "or held CPU overlapped (column 'clean'); CPU pressure per link: "
                      + ", ".join(f"{link['link']} {link['cpu_pressure']:.0%}" for link in data["links"]
                                  if link["cpu_pressure"] is not None), highlight=False)
    else:
        table = Table(title=f"{data['count']} moves of {data['mn']} on {data['topology']}")
        for column in ("#", "to", "move->RA ms", "move->CoA ms", "care-of address"):
            table.add_column(column, justify="right")
        for move in data["moves"]:
            table.add_row(str(move["n"]), move["to"], _fmt(move["ra_ms"], 1),
                          _fmt(move["coa_ms"], 1), move.get("address") or move.get("error", ""))
        console.print(table)
        for key, label in (("ra_ms", "move->RA"), ("coa_ms", "move->usable CoA")):
            s = data.get(key)
            if s:
                console.print(f"{label}: median {s['median']:.1f} ms, min {s['min']:.1f} ms, "
                              f"max {s['max']:.1f} ms")
    if data["ok"]:
        verdict = "[green]goal met[/green]"
    elif data.get("inconclusive"):
        verdict = ("[yellow]inconclusive[/yellow] (no loss; the host's pauses, or other programs keeping the "
                   "CPUs busy, leave the delays unjudgeable)")
    else:
        verdict = "[red]goal NOT met[/red]"
    console.print(f"{verdict}: {data['goal']}")


def run_clean(args) -> int:
    from testbed.lab.cleanup import clean_stale_runs

    report = clean_stale_runs(dry_run=args.dry_run, orphans=args.orphans)
    verb = "would remove" if args.dry_run else "removed"
    for run_id in report.runs:
        print(f"run {run_id}: {verb} its leftovers")
    for what, items in (("processes", report.processes), ("interfaces", report.interfaces),
                        ("paths", report.paths)):
        for item in items:
            print(f"  {verb} {what[:-1] if what != 'processes' else 'process'}: {item}")
    for run_id in report.in_use:
        print(f"run {run_id}: still running, left alone")
    if report.unclaimed:
        print("tagged interfaces no state file claims (left alone; --orphans removes them): "
              + ", ".join(report.unclaimed))
    for failure in report.failures:
        print(f"testbed: error: {failure}", file=sys.stderr)
    if not (report.runs or report.interfaces or report.paths or report.in_use or report.unclaimed):
        print("nothing to clean")
    return 1 if report.failures else 0
