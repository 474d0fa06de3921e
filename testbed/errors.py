"""Errors every layer may raise towards the user.

A TestbedError carries a one-line message that names the input and what is wrong with it;
the CLI prints it as ``testbed: error: <message>`` and exits with ``exit_code`` (no traceback).
"""


class TestbedError(Exception):
    """An error caused by the user's input or environment, reported in one line."""

    exit_code = 2


class ConfigError(TestbedError):
    """Bad configuration: a file or argument that is missing, malformed or unsafe."""
