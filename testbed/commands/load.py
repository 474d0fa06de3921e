"""``testbed load``: one correspondent agent under the load of N emulated mobile nodes.

    testbed load                                  # N = 100, 1,000, 10,000: a table of figures
    testbed load --mobiles 200 --moves 2 --json   # one N, JSON on stdout
    testbed load --rate 2000 --open-seconds 5     # open loop at 2,000 bindings/s (default: half
                                                  # the engine-bound rate measured in the run)
    testbed load --cn-option precomputed_max_lifetime=1000   # more keys for the CN's configuration

Exit status: 0 when every N met the targets (none lost, every BA authentic, moves at least
half the engine-bound rate), 1 when one was missed, 2 for bad arguments.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

from testbed.errors import ConfigError, TestbedError

MAX_MOBILES = 65535


def add_parser(sub) -> None:
    p = sub.add_parser(
        "load", help="a correspondent agent under the load of N emulated mobile nodes (root)",
        description="Bring up the 'load' lab (a load node and a CN agent on a real link), let the "
                    "load node emulate N mobile nodes (own home address, RFC 4449 preconfigured data "
                    "or return routability) binding and moving, closed loop and open loop, and "
                    "report bindings per second, BA latency, bindings lost, the CN's memory per "
                    "binding, CPU per BU and start-up time with N key files, against the CN "
                    "engine's own cost measured in the same run.")
    p.add_argument("--mobiles", type=int, nargs="+", metavar="N",
                   help="numbers of mobile nodes to run, in turn (default: 100 1000 10000)")
    p.add_argument("--rr-share", type=float, default=0.1, metavar="F",
                   help="share of the mobile nodes using return routability instead of "
                        "preconfigured data (default 0.1)")
    p.add_argument("--moves", type=int, metavar="K",
                   help="rounds of moves after the first registration, closed loop "
                        "(default: enough for 3,000 BUs, at least 1)")
    p.add_argument("--window", type=int, default=32, metavar="W",
                   help="closed loop: bindings in flight at once (default 32)")
    p.add_argument("--rate", type=float, metavar="R",
                   help="open loop: bindings started per second (default: half the engine-bound rate "
                        "measured in the run; 0: no open-loop phase)")
    p.add_argument("--open-seconds", type=float, default=2.0, metavar="S",
                   help="open loop: how long to offer the rate (default 2)")
    p.add_argument("--ba-timeout", type=float, default=1.0, metavar="S",
                   help="first retransmission timeout of a BU, HoTI or CoTI (default 1 s, then doubled)")
    p.add_argument("--cn-option", action="append", default=[], metavar="KEY=VALUE",
                   help="another key for the CN agent's configuration (repeatable; VALUE is YAML)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="directory under which the CN keeps its sequence store (default: the lab's "
                        "run directory); its file system decides what a durable write costs")
    p.add_argument("--profile", metavar="FILE",
                   help="profile the CN agent with cProfile into FILE (with N given once)")
    p.add_argument("--out", metavar="DIR", help="write load.json and the CN's event logs into DIR (must not "
                   "exist or be empty)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _options(items: list[str]) -> dict:
    from testbed.lab.params import parse_assignments

    options = {}
    for key, text in parse_assignments(items, "--cn-option").items():
        try:
            options[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--cn-option {key}: {text!r} is not a YAML value") from None
    return options


def build_spec(args):
    from testbed.experiments.load import DEFAULT_MOBILES, LoadSpec
    from testbed.lab.loadcheck import LoadSettings, check_cn_options

    mobiles = tuple(args.mobiles or DEFAULT_MOBILES)
    bad = [n for n in mobiles if not 1 <= n <= MAX_MOBILES]
    if bad:
        raise ConfigError(f"--mobiles {bad[0]}: expected 1..{MAX_MOBILES}")
    if not 0 <= args.rr_share <= 1:
        raise ConfigError(f"--rr-share {args.rr_share}: expected a share between 0 and 1")
    if args.moves is not None and not 0 <= args.moves <= 1000:
        raise ConfigError(f"--moves {args.moves}: expected 0..1000")
    if not 1 <= args.window <= 10000:
        raise ConfigError(f"--window {args.window}: expected 1..10000")
    if args.rate is not None and not 0 <= args.rate <= 1e6:
        raise ConfigError(f"--rate {args.rate}: expected 0..1000000 bindings per second")
    if not 0 < args.open_seconds <= 600:
        raise ConfigError(f"--open-seconds {args.open_seconds}: expected more than 0, at most 600")
    if not 0.01 <= args.ba_timeout <= 60:
        raise ConfigError(f"--ba-timeout {args.ba_timeout}: expected 0.01..60 seconds")
    options = _options(args.cn_option)
    check_cn_options(options)
    state_root = None
    if args.state_dir:
        state_root = Path(args.state_dir).absolute()
        if not state_root.is_dir():
            raise ConfigError(f"--state-dir {args.state_dir}: not a directory")
    profile = None
    if args.profile:
        if len(mobiles) != 1:
            raise ConfigError("--profile: give one --mobiles N (one profile per CN agent)")
        profile = Path(args.profile).absolute()
        if profile.exists():
            raise ConfigError(f"--profile {args.profile}: exists; refusing to overwrite it")
        if not profile.parent.is_dir():
            raise ConfigError(f"--profile {args.profile}: no directory {profile.parent}")
    out = None
    if args.out:
        out = Path(args.out).absolute()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(f"--out {args.out}: exists and is not an empty directory; refusing to overwrite results")
    settings = LoadSettings(rr_share=args.rr_share, window=args.window, rate=args.rate, open_seconds=args.open_seconds,
                            ba_timeout_s=args.ba_timeout, cn_options=options, state_root=state_root,
                            profile=profile, keep_dir=out)
    return LoadSpec(mobiles=mobiles, settings=settings, moves=args.moves), out


def run(args) -> int:
    spec, out = build_spec(args)
    if os.geteuid() != 0:
        raise TestbedError("testbed load builds network namespaces: run it as root")
    from testbed.experiments.load import run_load_experiment
    from testbed.experiments.load_table import print_summary

    summary = run_load_experiment(spec)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "load.json").write_text(json.dumps(summary, indent=1))
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print_summary(summary, sys.stdout)
        if out is not None:
            print(f"results: {out}")
    return 0 if summary["ok"] else 1
