"""``testbed experiment handover``: the handover latency experiment (the main job).

``testbed experiment security``, ``fuzz`` and ``faults``: attack scenarios against our agents, with verdicts.

``testbed experiment storm``: the corporate topology with ``--mobiles`` MN agents (default 100),
all bound, then AR1 fails and every MN moves to AR2 at once (docs/experiments-storm.md).

On a terminal a progress bar per mechanism follows the moves; otherwise one line per move.
The link-delay backend is said once, in one short line. Ctrl-C (or SIGTERM) stops the run:
what was measured is kept, the report is still written, and the exit status is 130.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from testbed.errors import ConfigError, TestbedError

EXPERIMENTS = ("handover", "security", "fuzz", "faults", "storm")
MECHANISM_CHOICES = ("precomputed", "rr", "rr-scratch")
EXIT_INTERRUPTED = 130


def add_parser(sub) -> None:
    p = sub.add_parser("experiment", help="run a scripted experiment (handover latency, security scenarios)")
    p.add_argument("name", choices=EXPERIMENTS, help="which experiment")
    p.add_argument("--moves", type=int, default=10, help="moves AR1 <-> AR2 per mechanism (default 10)")
    p.add_argument("--mechanism", action="append", choices=MECHANISM_CHOICES,
                   help="only this mechanism (repeatable; default all three: precomputed, rr, rr-scratch)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="lab parameter of the handover topology, e.g. core_ha_delay=50ms")
    p.add_argument("--count", type=int, default=100_000, help="fuzz: packets per agent (default 100,000)")
    p.add_argument("--rate", type=float, default=4000.0, help="fuzz: packets a second (default 4,000)")
    p.add_argument("--seed", type=int, default=1, help="fuzz, faults: the run's random seed (default 1)")
    p.add_argument("--kills", type=int, default=20, help="faults: SIGKILLs during BU floods (default 20)")
    p.add_argument("--scenario", action="append", metavar="NAME",
                   help="security: only this scenario (repeatable; names as in the report)")
    p.add_argument("--weaken", action="append", default=[], metavar="NAME",
                   help="security, TEST ONLY: run the CN or MN agent (whichever the name weakens) with this "
                        "defence off (testbed/mip6/weakening.py); faults: the CN's only")
    p.add_argument("--mobiles", type=int, default=100,
                   help="storm: mobile nodes, each with its own agent (default 100, at most 120)")
    p.add_argument("--rr-share", type=float, default=0.2, metavar="F",
                   help="storm: share of the MNs using return routability instead of precomputed data (default 0.2)")
    p.add_argument("--keys", choices=("local", "ansible"), default="local",
                   help="storm: how the keys reach the nodes: local files on tmpfs (default) or Ansible (keys.yml)")
    p.add_argument("--realtime-links", action="store_true",
                   help="storm: run the lab's delay lines at real-time priority (not starved by 100 agents)")
    p.add_argument("--persistence", default="strict", metavar="strict|reserve:N",
                   help="how the agents make sequence numbers durable (default strict; docs/persistence.md)")
    p.add_argument("--keep-warm", type=float, default=0.0, metavar="MS",
                   help="handover: the agents rehearse their per-BU code after MS milliseconds of idleness "
                        "(keep_warm_ms, docs/agent-latency.md; default 0: off)")
    p.add_argument("--inventory", metavar="FILE",
                   help="handover: run on the machines of this Ansible inventory over SSH instead of Mininet labs "
                        "(docs/multihost.md; e.g. playbooks/inventory/multihost.yml); --param then only sets the "
                        "model's delays")
    p.add_argument("--out", metavar="DIR", help="results directory (default results/<name>-<time> under the current "
                   "directory); must not exist or be empty")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def parse_persistence_option(text: str) -> str | dict:
    """``strict`` or ``reserve:N`` (the agents' ``persistence``); ConfigError naming the option."""
    from testbed.agent.config import parse_persistence

    if text == "strict":
        return "strict"
    if text.startswith("reserve:") and text[8:].isdigit():
        value = {"reserve": int(text[8:])}
        parse_persistence("--persistence", value)
        return value
    raise ConfigError(f"--persistence {text!r}: expected strict or reserve:N")


def run(args) -> int:
    if args.name == "security":
        return run_security_command(args)
    if args.name == "fuzz":
        return run_fuzz_command(args)
    if args.name == "faults":
        return run_faults_command(args)
    if args.name == "storm":
        return run_storm_command(args)
    from testbed.agent.config import parse_keep_warm
    from testbed.commands.lab import _sigterm_as_interrupt
    from testbed.experiments.handover import HandoverSpec, run_handover_experiment
    from testbed.lab.params import parse_assignments, parse_params
    from topologies.handover import HandoverTopo

    if not 1 <= args.moves <= 1000:
        raise ConfigError(f"--moves {args.moves}: expected 1..1000")
    persistence = parse_persistence_option(args.persistence)
    keep_warm_ms = parse_keep_warm("--keep-warm", args.keep_warm)
    if keep_warm_ms and args.inventory:
        raise ConfigError("--keep-warm: only for the Mininet labs, not with --inventory (set keep_warm_ms in the "
                          "agents' configuration on the machines instead)")
    params = parse_assignments(args.param)
    parse_params(HandoverTopo.PARAMS, params, "--param")  # refuse unknown names and bad values now
    # Absolute once, here: the agents resolve relative paths against their configuration's directory.
    out = _results_dir(args, "handover")
    backend = None
    if args.inventory:
        from testbed.experiments.multihost import HostsBackend

        backend = HostsBackend(args.inventory)
    elif os.geteuid() != 0:
        raise TestbedError("the handover experiment builds network namespaces: run it as root")
    mechanisms = tuple(dict.fromkeys(args.mechanism)) if args.mechanism else MECHANISM_CHOICES
    spec = HandoverSpec(moves=args.moves, mechanisms=mechanisms, params=params, persistence=persistence,
                        keep_warm_ms=keep_warm_ms)
    _quiet_lab_log()
    _sigterm_as_interrupt()
    with _Progress(spec, quiet=args.json) as progress:
        summary = run_handover_experiment(spec, out, progress=progress, backend=backend)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_table(summary, out)
    if summary["interrupted"]:
        return EXIT_INTERRUPTED
    return 0 if summary["ok"] else 1


class _OnceFilter(logging.Filter):
    """The lab's warnings, each once; the link-delay choice is said by the progress display."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("link delay:") or message in self.seen:
            return False
        self.seen.add(message)
        return True


def _quiet_lab_log() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("testbed: %(message)s"))
    handler.addFilter(_OnceFilter())
    logger = logging.getLogger("testbed.lab")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


BACKEND_LINES = {"delayline": "link delay: user-space delay line (this kernel has no netem)",
                 "netem": "link delay: netem"}


class _Progress:
    """A rich progress bar per mechanism on a terminal; one line per move otherwise."""

    def __init__(self, spec, quiet: bool = False) -> None:
        from rich.console import Console

        self.spec = spec
        self.quiet = quiet
        self.console = Console(stderr=quiet)
        self.live = self.console.is_terminal and not quiet
        self.bar = None
        self.tasks: dict[str, int] = {}
        self.backend_said = False

    def __enter__(self) -> _Progress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description:<17}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=self.console)
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text)
        else:
            self.console.print(text, highlight=False)

    def __call__(self, kind: str, mechanism: str = "", **info) -> None:
        moves = self.spec.moves
        if kind == "mechanism":
            if self.bar is not None:
                self.tasks[mechanism] = self.bar.add_task(mechanism, total=moves, note="bringing up the lab")
            else:
                self.say(f"{mechanism}: bringing up the lab (or the agents on the machines)")
        elif kind == "up":
            if not self.backend_said:
                self.say(BACKEND_LINES.get(info["backend"], f"link delay: {info['backend']}"))
                self.backend_said = True
            self._note(mechanism, f"lab up in {info['bring_up_s']:g} s, binding")
        elif kind == "bound":
            self._note(mechanism, "bound; moving")
        elif kind == "move":
            m = info["move"]
            coa_to_ba = None if m.move_to_ba_ms is None or m.move_to_coa_ms is None else m.move_to_ba_ms - m.move_to_coa_ms
            text = f"CoA-to-BA {coa_to_ba:.1f} ms" if coa_to_ba is not None else "no BA"
            if self.bar is not None:
                self.bar.update(self.tasks[mechanism], advance=1, note=f"move {m.index} to {m.to}: {text}")
            else:
                self.say(f"{mechanism}: move {m.index}/{moves} to {m.to}: {text}")
        elif kind == "mechanism_done":
            r = info["result"]
            end = "interrupted" if r.interrupted else ("done" if r.ok else f"failed: {r.error or 'see the report'}")
            self._note(mechanism, end)

    def _note(self, mechanism: str, text: str) -> None:
        if self.bar is not None and mechanism in self.tasks:
            self.bar.update(self.tasks[mechanism], note=text)
        elif self.bar is None:
            self.say(f"{mechanism}: {text}")


def _print_table(summary: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from testbed.lab.pauses import describe

    table = Table(title="Handover latency, usable CoA to BA, ms (model: docs/protocol.md section 7)")
    for column in ("mechanism", "ok", "moves", "undisturbed", "median", "p95", "model", "model+writes",
                   "within", "unexplained", "probes lost"):
        table.add_column(column, justify="left" if column == "mechanism" else "right")
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    for name, m in summary["mechanisms"].items():
        u = m["coa_to_ba_undisturbed_ms"]
        within = "-" if m["within_target"] is None else ("yes" if m["within_target"] else "NO")
        table.add_row(name, "yes" if m["ok"] else "NO", str(m["moves"]), str(m["undisturbed_moves"]),
                      fmt(u["median"]), fmt(u["p95"]), f"{m['model_ms']:g}",
                      "-" if m["target_ms"] is None else f"{m['target_ms']:.1f}±{m['tolerance_ms']:g}", within,
                      "-" if m["unexplained_ms"] is None else f"{m['unexplained_ms']:.2f}",
                      "-" if m["probes_lost"] is None else str(m["probes_lost"]))
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(table)
    if summary["host"]:
        console.print(describe(summary["host"]), highlight=False)
    if len(summary["mechanisms"]) == 3:
        verdict = {True: "yes", False: "NO", None: "not judged (a mechanism had no undisturbed move)"}
        console.print(f"precomputed < rr < rr-scratch (undisturbed medians): {verdict[summary['ordered']]}")
    pushes = [f"{name} {m['key_push_s']:.1f} s" for name, m in summary["mechanisms"].items() if m.get("key_push_s") is not None]
    if pushes:
        console.print("keys pushed with Ansible (keys.yml) per lab: " + ", ".join(pushes))
    for name, m in summary["mechanisms"].items():
        if m["error"]:
            console.print(f"{name}: error: {m['error']}")
    if summary["interrupted"]:
        console.print("interrupted: the figures cover the moves made")
    console.print(f"results: {out} (report.md, metrics.csv, handover.png)", highlight=False)


def run_storm_command(args) -> int:
    from testbed.commands.lab import _sigterm_as_interrupt
    from testbed.experiments.storm import MAX_MOBILES, StormSpec, run_storm
    from testbed.lab.params import parse_assignments, parse_params
    from topologies.handover import DELAY_PARAMS

    if not 1 <= args.mobiles <= MAX_MOBILES:
        raise ConfigError(f"--mobiles {args.mobiles}: expected 1..{MAX_MOBILES}")
    if not 0.0 <= args.rr_share <= 1.0:
        raise ConfigError(f"--rr-share {args.rr_share:g}: expected a share from 0 to 1")
    persistence = parse_persistence_option(args.persistence)
    params = parse_assignments(args.param)
    parse_params(DELAY_PARAMS, params, "--param")  # the link delays only; the storm places the MNs itself
    out = _results_dir(args, "storm")
    if os.geteuid() != 0:
        raise TestbedError("the storm experiment builds network namespaces: run it as root")
    spec = StormSpec(mobiles=args.mobiles, rr_share=args.rr_share, keys=args.keys, params=params,
                     persistence=persistence, realtime_links=args.realtime_links)
    _quiet_lab_log()
    _sigterm_as_interrupt()

    def progress(kind: str, **info) -> None:
        if args.json:
            return
        text = {"up": lambda: f"lab up in {info['seconds']:g} s ({info['mobiles']} mobile nodes); starting the agents",
                "agents": lambda: f"agents up in {info['seconds']:g} s; binding",
                "bound": lambda: "every MN bound; AR1 fails",
                "storm": lambda: f"{info['mobiles']} MNs moved to AR2 within {info['span_ms']:g} ms",
                "followed": lambda: "every binding followed" if info["seconds"] is None
                else f"every binding followed after {info['seconds']:.3f} s"}.get(kind)
        if text is not None:
            print(f"storm: {text()}", flush=True)

    summary = run_storm(spec, out, progress=progress)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print((out / "report.md").read_text())
        print(f"results: {out} (report.md, summary.json, metrics.csv, host.json)")
    if summary["interrupted"]:
        return EXIT_INTERRUPTED
    return 0 if summary["ok"] else 1


def run_security_command(args) -> int:
    from testbed.experiments.security.run import run_security, scenario_names
    from testbed.mip6.weakening import CN, HA, MN

    names = scenario_names()
    for name in args.scenario or ():
        if name not in names:
            raise ConfigError(f"--scenario {name}: no such scenario (known: {', '.join(names)})")
    for name in args.weaken:
        if name in HA:
            raise ConfigError(f"--weaken {name}: a home agent's weakening, and no security scenario runs our home "
                              "agent (the CN's and the MN's weakenings only)")
        if name not in CN and name not in MN:
            raise ConfigError(f"--weaken {name}: not a weakening of our CN or MN "
                              f"(known: {', '.join(sorted(CN) + sorted(MN))})")
    out = _results_dir(args, "security")
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
    out = _results_dir(args, "fuzz")
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
    out = _results_dir(args, "faults")
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


def _results_dir(args, name: str) -> Path:
    """``--out`` or results/<name>-<time>, absolute once, here (agents and captures run elsewhere)."""
    out = Path(os.path.abspath(args.out or f"results/{name}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out}: exists and is not an empty directory; refusing to overwrite results")
    return out
