"""``testbed experiment``: scripted experiment campaigns (placeholder until the experiments land)."""

from __future__ import annotations

import sys

EXPERIMENTS = ("handover",)


def add_parser(sub) -> None:
    p = sub.add_parser("experiment", help="run a scripted experiment (handover latency, security)")
    p.add_argument("name", choices=EXPERIMENTS, help="which experiment")
    p.set_defaults(func=run)


def run(args) -> int:
    print(
        f"testbed: the '{args.name}' experiment needs the agents and the lab, which have not landed yet",
        file=sys.stderr,
    )
    return 1
