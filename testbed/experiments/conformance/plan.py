"""The conformance lab's addresses, per profile (docs/conformance.md has the same table).

The tester and the node under test (IUT) share one link (``topologies/conformance.py``).
The tester plays every other party: mobile nodes, correspondents, the home agent, routers.
Addresses off the link (care-of addresses, home addresses of the mobile nodes the tester
plays) are reached through the tester, the IUT's default router; the tester reads every
frame sent to it, whatever its IPv6 destination.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

TESTER_IFACE = "tester-eth0"
IUT_IFACE = "iut-eth0"

# correspondent-node profiles (rfc4449, rr): the IUT is the CN
CN_ADDRESS = "2001:db8:3::1"
CN_TESTER = "2001:db8:3::fe"
CN_PREFIX_LEN = 64
# home agent profile: the IUT is the HA on the home link
HOME_PREFIX = "2001:db8:1::/64"
HA_ADDRESS = "2001:db8:1::1"
HA_TESTER = "2001:db8:1::fe"
OUTSIDE_HOME = "2001:db8:5::100"  # a home address outside the home prefix (BA 132), with a key
# mobile nodes the tester plays
PRECOMPUTED_HOMES = tuple(f"2001:db8:1::{0x100 + i:x}" for i in range(8))
RR_HOMES = tuple(f"2001:db8:1::{0x200 + i:x}" for i in range(4))
CAREOF = tuple(f"2001:db8:a:{k}::100" for k in range(1, 6))
# mobile node profile: the IUT is the MN; the tester its routers, home agent and correspondents
MN_HOME = "2001:db8:1::100"
MN_HOME_AGENT = HA_ADDRESS
MN_CN_PRECOMPUTED = "2001:db8:3::1"
MN_CN_RR = "2001:db8:3::2"
ROUTERS = (("fe80::1", "2001:db8:a:1::/64"), ("fe80::2", "2001:db8:a:2::/64"), ("fe80::3", "2001:db8:a:3::/64"))


@dataclass(frozen=True)
class PeerNames:
    """Which precomputed home address each correspondent check uses: checks that change a
    peer's stored number for good (wrap-around, the R13 bound, a restart) get their own."""

    main: str = PRECOMPUTED_HOMES[0]
    other: str = PRECOMPUTED_HOMES[1]  # "another MN": its key authenticates BUs for main
    wrap: str = PRECOMPUTED_HOMES[2]
    r13: str = PRECOMPUTED_HOMES[3]
    restart: str = PRECOMPUTED_HOMES[4]
    home_reg: str = PRECOMPUTED_HOMES[5]
    dereg: str = PRECOMPUTED_HOMES[6]
    fuzz: str = PRECOMPUTED_HOMES[7]


PEERS = PeerNames()


def eui64(prefix: str, mac: str) -> str:
    """The SLAAC address of ``mac`` on the /64 ``prefix`` (where the IUT as MN will be)."""
    octets = bytes(int(x, 16) for x in mac.split(":"))
    iid = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:6]
    return str(ipaddress.IPv6Network(prefix).network_address + int.from_bytes(iid, "big"))
