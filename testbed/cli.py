"""The ``testbed`` command."""

from __future__ import annotations

import argparse
import importlib
import sys

from testbed import __version__
from testbed.errors import TestbedError

# Subcommand modules in testbed/commands/, in the order `testbed --help` lists them.
COMMANDS = ("keygen", "keys", "kbm", "verify_pcap", "agent", "agent_ctl", "lab", "experiment", "load", "conformance", "check_host")


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line naming the input and the problem, exit 2 (no usage dump)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="testbed",
        description="Mobile IPv6 route-optimisation security testbed "
        "(RFC 6275 return routability, RFC 4449 precomputed Kbm).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"testbed.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TestbedError as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("testbed: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
