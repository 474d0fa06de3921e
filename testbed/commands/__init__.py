"""Subcommands of the ``testbed`` command, one module each.

Each module defines ``add_parser(subparsers)`` which registers its parser and sets
``func=run``; ``run(args) -> int`` returns the exit code.
"""
