"""Receive-to-send time of Binding Updates in the real agents (issue 4), from their event logs.

Runs the handover self-test (a fresh ``handover`` lab per mechanism, MOVES moves) and prints,
per mechanism and agent, the median and p99 of the time from a BU's arrival (kernel receive
timestamp) to its BA leaving the agent. Goal: median at most 0.3 ms, p99 at most 2 ms.

The pause monitor (testbed/lab/pauses.py: a SCHED_FIFO watcher process pinned to each CPU,
steal time, CPU pressure) runs meanwhile: the figures are given over all BUs and over the
"clean" ones, whose turnaround no host pause of the machine's CPUs overlapped, so that a host
pausing the VM can be told apart from slow code; our own load is printed as such. For the clean BUs the median is
split in two: from the kernel's receive stamp to the agent waking up to read it, and from
then to the BA leaving (parsing, checks, the durable sequence-number write, sending), and
the second part once more: the durable write(s) (the agents' ``durable_write`` events) and
the rest.
Needs root. Usage: .venv/bin/python benchmarks/agent_bu_turnaround.py [MOVES]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from testbed.lab.handover_check import bu_turnarounds, run_handover_check
from testbed.lab.pauses import PauseMonitor, describe


def figures(deltas_ns: list[int]) -> str:
    if not deltas_ns:
        return f"{0:>5} {'':>9} {'':>8}"
    d = sorted(deltas_ns)
    p99 = d[min(len(d) - 1, int(round(0.99 * (len(d) - 1))))]
    return f"{len(d):>5} {statistics.median(d) / 1e6:>9.3f} {p99 / 1e6:>8.3f}"


def median_ms(values: list[int]) -> str:
    return f"{statistics.median(values) / 1e6:>9.3f}" if values else f"{'':>9}"


def main() -> int:
    moves = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory(prefix="mip6-bench-") as tmp, PauseMonitor() as host:
        results = run_handover_check(moves=moves, run_root=Path(tmp))
    print(f"{'':18} {'all BUs':^24} | {'clean BUs (no pause overlapped)':^62}")
    print(f"{'mechanism':12} {'agent':5} {'BUs':>5} {'median ms':>9} {'p99 ms':>8} | {'BUs':>5} {'median ms':>9} "
          f"{'p99 ms':>8} {'to wake':>9} {'handling':>9} {'of which':>9} {'others':>9}")
    print(f"{'':18} {'':24} | {'':44} {'durable':>9} {'':>9}")
    for r in results:
        for node in ("cn", "ha"):
            events = r.events.get(node, [])
            writes = [(e["t_ns"], e["end_t_ns"]) for e in events if e["event"] == "durable_write"]
            rows = bu_turnarounds(events)
            clean = [(a, w, b) for a, w, b in rows if not host.overlaps_monotonic(a, b)]
            woke = [(a, w, b) for a, w, b in clean if w is not None]
            written = [sum(e - s for s, e in writes if a <= s <= b) for a, _, b in woke]
            print(f"{r.mechanism:12} {node:5} {figures([b - a for a, _, b in rows])} | "
                  f"{figures([b - a for a, _, b in clean])} {median_ms([w - a for a, w, _ in woke])} "
                  f"{median_ms([b - w for _, w, b in woke])} {median_ms(written)} "
                  f"{median_ms([b - w - x for (_, w, b), x in zip(woke, written)])}")
    print(describe(host.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
