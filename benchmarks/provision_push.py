"""What pushing the keys with Ansible costs per lab (root; prints figures, asserts nothing).

    .venv/bin/python benchmarks/provision_push.py [--rounds 3] [--mobiles 10]

Per round, in a fresh ``handover`` lab (MN, CN, HA: 3 nodes) and a fresh ``corporate`` lab
(``--mobiles`` MNs, one CN, one HA): the first push (keys.yml through ansible-runner, key
files and agent configurations written), a second push of the same keys (nothing changes),
and, in the handover lab, a rekey of the pair (rekey.yml, both agents' files replaced; no
agent runs, so nothing to reload). Prints the median and range of each, in seconds, and the
load average: on a busy machine (other labs, host pauses) the figures are longer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.lab.lab import Lab  # noqa: E402
from testbed.provision.api import push_keys, rekey  # noqa: E402
from testbed.provision.inventory import lab_inventory, nodes_of_lab  # noqa: E402
from testbed.provision.keyset import generate_keyset  # noqa: E402


def one_lab(topology: str, **params) -> dict[str, float]:
    out = {}
    with Lab(topology, **params) as lab:
        inventory = lab_inventory(nodes_of_lab(lab))
        keyset = generate_keyset(inventory.peers())
        first = push_keys(inventory, keyset, reload=False, progress=False)
        again = push_keys(inventory, keyset, reload=False, progress=False)
        assert again.changed == 0, again.stats
        out["first push"], out["second push (no change)"] = first.seconds, again.seconds
        if topology == "handover":
            _, result = rekey(inventory, keyset, [inventory.pairs[0]], progress=False)
            out["rekey one pair"] = result.seconds
        out["hosts"] = len(first.stats)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mobiles", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("provision_push: needs root (it brings up labs)", file=sys.stderr)
        return 2
    figures: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, params in (("handover", {}), (f"corporate, {args.mobiles} MNs", {"n_mns": args.mobiles})):
            t = one_lab(name.split(",")[0], **params)
            hosts = int(t.pop("hosts"))
            for what, seconds in t.items():
                figures.setdefault(f"{name} ({hosts} hosts): {what}", []).append(seconds)
    print(f"load average {os.getloadavg()[0]:.2f} (2 CPUs: above 2, other work competed)")
    for what, values in figures.items():
        print(f"{what}: median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, "
              f"n={len(values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
