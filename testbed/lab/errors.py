"""Errors of the lab: a run that cannot come up or a condition not reached in time."""

from testbed.errors import TestbedError


class LabError(TestbedError):
    """The lab could not do something (a tool missing, a daemon failing); one-line message."""

    exit_code = 1


class LabTimeout(LabError):
    """A condition the lab waited for did not hold before its deadline."""

