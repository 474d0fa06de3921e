"""The emulated network: Mininet topologies, link delay, handover, captures and the lab life cycle.

Entry point: :class:`testbed.lab.lab.Lab` (``with Lab("handover") as lab: ...``).
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
