"""``testbed conformance``: the black-box conformance suite against one implementation.

    testbed conformance --target ours                  # our agents (the built-in target)
    testbed conformance --target my-stack.yaml         # another stack (docs/conformance.md)
    testbed conformance --target ours --only CN-4449-03 --only CN-BE-1
    testbed conformance --target ours --weaken auth    # TEST ONLY: our CN with one defence off (ha_*: HA, mn_*: MN)
    testbed conformance --target ours --broken-variants   # TEST ONLY: every weakening fails its checks

Exit status: 0 when every applicable check passed, 1 when one failed or could not run, 2
for bad arguments or a bad target file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from testbed.errors import ConfigError, TestbedError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "conformance", help="black-box conformance checks against a mobility stack (root)",
        description="Bring up the 'conformance' lab (a tester node and the node under test on one link), "
                    "start the implementation the target file describes in the node under test and judge "
                    "what comes back on the wire: correspondent node (RFC 4449, return routability), home "
                    "agent and mobile node checks, each with the RFC section it comes from.")
    p.add_argument("--target", required=True, metavar="ours|FILE",
                   help="'ours' (this testbed's agents) or a target file (docs/conformance.md)")
    p.add_argument("--only", action="append", metavar="CHECK",
                   help="run only this check (repeatable; ids as in the report, e.g. CN-4449-03)")
    p.add_argument("--profile", action="append", choices=("rfc4449", "rr", "cn", "ha", "mn"),
                   help="run only the checks of this profile (repeatable)")
    p.add_argument("--weaken", action="append", default=[], metavar="NAME",
                   help="TEST ONLY: turn one defence of our agents off (testbed/mip6/weakening.py; each name is "
                        "one role's and weakens that role's agent only), to show that the checks can fail; only "
                        "with --target ours")
    p.add_argument("--broken-variants", action="store_true",
                   help="TEST ONLY: run our CN, HA and MN with each of their weakenings in turn (or those given "
                        "with --weaken) against the checks that guard it; each of those checks must fail")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("--out", metavar="DIR",
                   help="results directory (default results/conformance-<target>-<time>); must not exist")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from testbed.experiments.conformance.suite import REGISTRY, run_conformance
    from testbed.experiments.conformance.target import load_target
    from testbed.mip6.weakening import BY_ROLE

    if args.list:
        for c in REGISTRY:
            print(f"{c.id:18} {c.profile:8} {c.reference:40} {c.title}")
        return 0
    target = load_target(args.target)
    known = {c.id for c in REGISTRY}
    only = set(args.only) if args.only else None
    for name in only or ():
        if name not in known:
            raise ConfigError(f"--only {name}: no such check (see testbed conformance --list)")
    if args.profile:
        chosen = {c.id for c in REGISTRY if c.profile in args.profile}
        only = chosen if only is None else only & chosen
    all_weakenings = {name for table in BY_ROLE.values() for name in table}
    for name in args.weaken:
        if name not in all_weakenings:
            raise ConfigError(f"--weaken {name}: not a weakening of our agents (known: {', '.join(sorted(all_weakenings))})")
    if args.weaken and target.name != "ours":
        raise ConfigError("--weaken: only with --target ours (it switches defences of this testbed's agents off)")
    out = Path(args.out) if args.out else Path("results") / f"conformance-{target.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; refusing to overwrite results")
    if os.geteuid() != 0:
        raise TestbedError("the conformance suite builds network namespaces: run it as root")

    def progress(o) -> None:
        if not args.json:
            print(f"{o.verdict:>14}  {o.name:18} {o.requirement}: {o.detail}"[:200], flush=True)

    if args.broken_variants:
        from testbed.experiments.conformance.suite import run_broken_variants

        summary = run_broken_variants(target, out, names=tuple(args.weaken) or None, progress=progress)
    else:
        summary = run_conformance(target, out, weaken=tuple(args.weaken), only=only, progress=progress)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        c = summary["counts"]
        print(f"{c['pass']} passed, {c['fail']} failed, {c['error']} errors, {c['not applicable']} not applicable; "
              f"results: {out} (report.md, summary.json, junit.xml)", file=sys.stdout)
    return 0 if summary["ok"] else 1
