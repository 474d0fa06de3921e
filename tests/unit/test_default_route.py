"""The MN's one-message default route replace (testbed/agent/defaultroute.py), decoded by
pyroute2's own netlink parser: the request is what `ip -6 route replace default via GW dev
IF metric P` sends. (The moves of tests/agent/test_handover_lab.py use it for real.)"""

from __future__ import annotations

import ipaddress
import struct

from pyroute2.netlink.rtnl.rtmsg import rtmsg

from testbed.agent.defaultroute import NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, errors_in, replace_default_message


def test_the_request_is_a_replace_of_the_default_route():
    data = replace_default_message(ipaddress.IPv6Address("2001:db8:a:2::1"), 7, 1, 42)
    msg = rtmsg(data)
    msg.decode()
    assert msg["header"]["type"] == 24 and msg["header"]["sequence_number"] == 42
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    assert msg["header"]["length"] == len(data)
    assert (msg["family"], msg["dst_len"], msg["table"]) == (10, 0, 254)
    assert msg.get_attr("RTA_GATEWAY") == "2001:db8:a:2::1"
    assert msg.get_attr("RTA_OIF") == 7 and msg.get_attr("RTA_PRIORITY") == 1


def test_errors_are_told_from_acknowledgements():
    def error(seq: int, err: int) -> bytes:
        return struct.pack("=IHHII", 36, 2, 0, seq, 0) + struct.pack("=i", err) + bytes(16)

    assert errors_in(error(5, 0) + error(6, -101)) == [(6, 101)]
    assert errors_in(b"") == [] and errors_in(bytes(15)) == []
