"""A lab's mobile node made into a "machine" with one NIC per access network and a management
NIC, the stand-in for the multi-host profile's MN VM when the hosts backend runs in CI
(docs/multihost.md).

``dual_home(lab)`` adds to a running ``handover`` lab, whose MN is on AR1's segment:

- a second NIC in the MN (``mn-eth9``, down) whose other end is a port of AR2's segment bridge
  (``<bridge>-eth90``, a tagged name: the lab, or ``testbed lab clean``, removes it);
- a management link between the MN (``mn-mgmt``) and another node (``via``, default the core
  router, where the SSH client of ``SshNodes`` runs): the controller reaches the MN through it
  whichever access NIC is up, as it reaches a VM through Vagrant's management network.

The MN's own NIC (``mn-eth0``) stays on AR1's segment: a handover is one NIC down and the other
up, never a bridge change. Everything added lives in the lab's namespaces or carries its tag.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from testbed.lab.errors import LabError
from testbed.lab.naming import bridge_name

SECOND_NIC = "mn-eth9"
SECOND_PORT_INDEX = 90
MGMT_NIC = "mn-mgmt"
MGMT_PEER = "via-mgmt"
MGMT_PREFIX = "fd6d:6d6d::"
MGMT_ADDRESS = f"{MGMT_PREFIX}2"
MGMT_PEER_ADDRESS = f"{MGMT_PREFIX}1"


@dataclass(frozen=True)
class DualHomed:
    access: dict[str, str]  # access router -> the MN's NIC on its network
    management_address: str  # the MN's address on the management link


def _ip(*args: str, pid: int | None = None) -> None:
    argv = ["ip", *args] if pid is None else ["nsenter", "--target", str(pid), "--net", "--", "ip", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {' '.join(done.stderr.split())}")


def dual_home(lab, mn: str = "mn", *, first: str = "ar1", second: str = "ar2", via: str = "core") -> DualHomed:
    plan = lab.addresses
    m = plan.mobile(mn)
    if lab.location(mn) != plan.segment(first).name:
        raise LabError(f"dual_home: {mn} must be on {first}'s segment (it is on {lab.location(mn)})")
    mn_pid, via_pid = lab.node(mn).pid, lab.node(via).pid
    bridge = bridge_name(lab.run_id, plan.segment(second).name)
    port = f"{bridge}-eth{SECOND_PORT_INDEX}"
    _ip("link", "add", port, "type", "veth", "peer", "name", SECOND_NIC, "netns", str(mn_pid))
    _ip("link", "set", "dev", port, "master", bridge, "up")
    _ip("link", "add", MGMT_NIC, "netns", str(mn_pid), "type", "veth", "peer", "name", MGMT_PEER,
        "netns", str(via_pid))
    _ip("-6", "addr", "add", f"{MGMT_ADDRESS}/64", "dev", MGMT_NIC, "nodad", pid=mn_pid)
    _ip("link", "set", "dev", MGMT_NIC, "up", pid=mn_pid)
    _ip("-6", "addr", "add", f"{MGMT_PEER_ADDRESS}/64", "dev", MGMT_PEER, "nodad", pid=via_pid)
    _ip("link", "set", "dev", MGMT_PEER, "up", pid=via_pid)
    return DualHomed({first: m.intf, second: SECOND_NIC}, MGMT_ADDRESS)
