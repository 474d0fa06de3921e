"""``testbed check-host``: what a user runs before measuring on a machine.

Prints the kernel features the lab uses and the fall-backs chosen (netem or the delay line,
kernel Mobile IPv6 or not, IPv6-in-IPv6, optimistic DAD, which ip6tables), the kernel's
configuration and modules, and what a probe in a throwaway namespace saw it do with Mobile
IPv6 packets (testbed/lab/kernelmip6.py, docs/kernels.md), then watches the machine for
``--seconds`` with the pause monitor (testbed/lab/pauses.py) and gives a verdict on whether
timing results from here can be trusted. Exit 0: trusted or usable; 1: not trusted.
"""

from __future__ import annotations

import json
import math
import os
import time

from testbed.errors import ConfigError

MAX_SECONDS = 600.0


def add_parser(sub) -> None:
    p = sub.add_parser("check-host", help="kernel features, fall-backs and host pauses: can timing be trusted here?",
                       description="Kernel features the lab uses and the fall-backs chosen, then the host's "
                                   "pauses over --seconds, with a verdict on timing results from this machine.")
    p.add_argument("--seconds", default="10", metavar="N",
                   help=f"how long to watch for host pauses (default 10, at most {MAX_SECONDS:g})")
    p.add_argument("--json", action="store_true", help="the figures and the verdict as JSON")
    p.set_defaults(func=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--seconds {text!r}: expected a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise ConfigError(f"--seconds {text}: expected more than 0 and at most {MAX_SECONDS:g}")
    return value


def _delay_backend(kernel: dict):
    from testbed.lab import netem
    from testbed.lab.features import Feature

    option = kernel["config"].get("CONFIG_NET_SCH_NETEM")
    config = f" (CONFIG_NET_SCH_NETEM={option})" if option else ""
    if netem.netem_available():
        return Feature("link delay", "netem" + config)
    detail = netem.netem_probe_detail()
    return Feature("link delay", "user-space delay line (testbed.lab.delayline)",
                   "no netem qdisc in this kernel" + config + (f" (tc: {detail})" if detail else ""))


def run(args) -> int:
    from testbed.lab import features, kernelmip6
    from testbed.lab.pauses import PauseMonitor, describe, timing_verdict

    seconds = _seconds(args.seconds)
    kernel = kernelmip6.report()
    found = [_delay_backend(kernel), features.kernel_mip6(kernel), features.tunnel6(kernel), features.choose_dad(),
             features.packet_filter()]
    with PauseMonitor() as host:
        time.sleep(seconds)  # the measurement window itself, not a wait for an event
    summary = host.summary()
    level, reasons = timing_verdict(summary, idle=True)
    data = {"features": [{"name": f.name, "chosen": f.chosen, "missing": f.missing} for f in found],
            "kernel": kernel, "root": os.geteuid() == 0, "cpus": summary["monitor"]["cpus"], "host": summary,
            "verdict": {"timing": level, "reasons": reasons}}
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        _print(data, describe(summary))
    return 1 if level == "not trusted" else 0


def _print(data: dict, host_line: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="what the lab will use on this machine")
    table.add_column("feature")
    table.add_column("chosen")
    table.add_column("why not the first choice")
    for f in data["features"]:
        table.add_row(f["name"], f["chosen"], f["missing"] or "")
    console.print(table)
    k = data["kernel"]
    console.print(f"kernel {k['release']}, configuration from {k['config_source'] or 'nowhere (not found)'}: "
                  + ", ".join(f"{name}={value}" for name, value in k["config"].items()), highlight=False)
    modules = [f"{name} " + ("loaded" if m["loaded"] else "built in" if m["builtin"] else "loadable" if m["loadable"]
                             else "absent" if m["loadable"] is False else "no module lists")
               + (" (" + "; ".join(m["modprobe_rules"]) + ")" if m["modprobe_rules"] else "")
               for name, m in k["modules"].items()]
    if k["config"].get("CONFIG_MODULES") == "n":
        console.print("modules: none (CONFIG_MODULES not set: each feature is built in or absent)", highlight=False)
    else:
        console.print("modules: " + ", ".join(modules), highlight=False)
    for aspect, sentence in k["verdict"].items():
        console.print(f"probe ({aspect}): {sentence}", highlight=False)
    if not data["root"]:
        console.print("not root: the lab and the real-time pause watchers need root")
    console.print(host_line, highlight=False)
    v = data["verdict"]
    colour = {"trusted": "green", "usable": "yellow"}.get(v["timing"], "red")
    console.print(f"timing results from this machine: [{colour}]{v['timing']}[/{colour}]: " + "; ".join(v["reasons"]))
