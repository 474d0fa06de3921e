"""The agent's sender asks the kernel for transmit stamps on request: real packets over a
veth pair between two namespaces."""

from __future__ import annotations

import socket
import time

import pytest
from netns_pair import in_netns, netns_pair, sh

from testbed.agent.packetio import PacketSender
from testbed.mip6.packet import build_packet

pytestmark = pytest.mark.lab

A, B = "2001:db8:77::1", "2001:db8:77::2"


def test_stamped_sends_get_their_transmit_stamp_between_the_call_and_its_return():
    with netns_pair([f"{A}/64"], [f"{B}/64"]) as (tag, a, b):
        mac = sh("ip", "-n", b, "-br", "link", "show", f"{tag}y").stdout.split()[2]
        sh("ip", "-n", a, "neigh", "replace", B, "lladdr", mac, "dev", f"{tag}x", "nud", "permanent")
        sender = in_netns(a, PacketSender)  # B's address resolved: nothing waits, every stamp is taken in the send
        try:
            assert sender.stamping
            packet = build_packet(socket.inet_pton(socket.AF_INET6, A), socket.inet_pton(socket.AF_INET6, B),
                                  59, b"\0" * 8)
            calls = []
            for _ in range(3):
                before = time.monotonic_ns()
                number = sender.send(packet, stamp=len(calls) != 1)  # the second one unstamped
                calls.append((number, before, time.monotonic_ns()))
            stamps = sender.stamps(2)
            assert [n for n, _, _ in calls] == [0, None, 1]
            assert sorted(stamps) == [0, 1]
            for number, before, after in calls:
                if number is not None:
                    assert before <= stamps[number] <= after + 1_000_000  # (clock offsets read per call)
            assert sender.stamps(2) == {}  # nothing left

            # a stamped send that fails: the numbers go on (given with each packet on this kernel)
            nowhere = build_packet(socket.inet_pton(socket.AF_INET6, A), socket.inet_pton(socket.AF_INET6, "2001:db8:99::5"),
                                   59, b"\0" * 8)
            with pytest.raises(OSError):
                sender.send(nowhere, stamp=True)
            assert sender.stamping
            before = time.monotonic_ns()
            number = sender.send(packet, stamp=True)
            after = time.monotonic_ns()
            stamps = sender.stamps(1)
            assert list(stamps) == [number] and before <= stamps[number] <= after + 1_000_000
        finally:
            sender.close()
