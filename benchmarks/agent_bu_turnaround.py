"""Receive-to-send time of Binding Updates in the real agents (issue 4), from their event logs.

Runs the handover self-test (a fresh ``handover`` lab per mechanism, MOVES moves) and prints,
per mechanism and agent, the median and p99 of the time from a BU's arrival (kernel receive
timestamp) to its BA leaving the agent. Goal: median at most 0.3 ms, p99 at most 2 ms.
Needs root. Usage: .venv/bin/python benchmarks/agent_bu_turnaround.py [MOVES]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from testbed.lab.handover_check import bu_turnaround_ns, run_handover_check


def main() -> int:
    moves = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory(prefix="mip6-bench-") as tmp:
        results = run_handover_check(moves=moves, run_root=Path(tmp))
        print(f"{'mechanism':12} {'agent':5} {'BUs':>4} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
        for r in results:
            for node in ("cn", "ha"):
                d = sorted(bu_turnaround_ns(r.events.get(node, [])))
                if not d:
                    print(f"{r.mechanism:12} {node:5} {0:>4}")
                    continue
                p99 = d[min(len(d) - 1, int(round(0.99 * (len(d) - 1))))]
                print(f"{r.mechanism:12} {node:5} {len(d):>4} {statistics.median(d) / 1e6:>10.3f} {p99 / 1e6:>8.3f} {d[-1] / 1e6:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
