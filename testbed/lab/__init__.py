"""The emulated network: Mininet topologies, link delay, handover, captures and the lab life cycle.

Entry point: :class:`testbed.lab.lab.Lab` (topologies and addressing plan:
``topologies/README.md``)::

    with Lab("handover", run_dir=None, core_ha_delay="50ms") as lab:
        lab.run_id, lab.run_dir                    # 4 hex digits; pathlib.Path
        lab.addresses                              # AddressPlan: nodes, interfaces, routes,
        lab.addresses.home_address("mn")           #   home addresses, HA, CNs, AR prefixes
        lab.node("mn")                             # the Mininet host (node.cmd() for set-up)
        proc = lab.popen("mn", argv, tag="agent", stdout=None, env={...})   # LabProcess
        done = lab.run("cn", ["ping", "-6", "-c", "1", addr])               # CompletedProcess
        cap = lab.capture("mn", "mn-eth0")         # tcpdump, capturing when this returns
        t_ns = lab.move("mn", to="ar2")            # time.monotonic_ns() of the move
        coa = lab.wait_for_coa("mn", timeout=2)    # CareOfAddress(address, ra_ns, usable_ns)
        lab.location("mn")                         # "a2"
        lab.features, lab.delay_backend            # what the probes chose

Processes started with ``popen``/``capture`` are stopped on exit (SIGTERM, deadline,
SIGKILL); the whole run (namespaces, bridges, veths, processes, temporary files) is removed
on exit, after an exception and on Ctrl-C. ``testbed lab clean`` removes what a crashed run
left. Errors: :class:`LabError` (one line; ``LabTimeout`` when a condition did not hold
in time) and ``testbed.errors.ConfigError`` for bad parameters.
"""

from __future__ import annotations

__all__ = ["Lab", "LabError", "LabTimeout"]


def __getattr__(name: str):
    # Lazy: ``python -m testbed.lab.delayline`` and friends must not import Mininet.
    if name == "Lab":
        from testbed.lab.lab import Lab

        return Lab
    if name in ("LabError", "LabTimeout"):
        from testbed.lab import errors

        return getattr(errors, name)
    raise AttributeError(name)
