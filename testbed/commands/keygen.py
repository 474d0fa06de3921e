"""``testbed keygen`` (not implemented yet)."""

from __future__ import annotations

from testbed.errors import TestbedError


def add_parser(sub) -> None:
    p = sub.add_parser("keygen", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise TestbedError("'keygen' is not implemented yet")
