import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

# The machines are small and share their two cores with lab tests: no per-example deadline.
settings.register_profile("testbed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("testbed")

LAB_TOOLS = ("mnexec", "radvd", "tcpdump", "ip", "ping", "tshark", "ethtool", "unshare", "strace")


def _lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root"
    missing = [t for t in LAB_TOOLS if shutil.which(t) is None]
    if missing:
        return "lab tests need " + ", ".join(missing) + " (run scripts/install)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _lab_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
