"""Run inside a namespace: send one packet (hex on argv) through a raw socket and print, as
JSON lines, the IPv6 packets that arrive within a deadline (hex), for agent tests.

argv: packet hex, deadline s, how many packets to wait for, and optionally "errors" to
include ICMPv6 error messages (types below 128; never ND or RAs)."""

from __future__ import annotations

import json
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003


def main() -> int:
    packet = bytes.fromhex(sys.argv[1])
    deadline = time.monotonic() + float(sys.argv[2])
    want = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    errors = len(sys.argv) > 4 and sys.argv[4] == "errors"
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    tx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    tx.sendto(packet, (socket.inet_ntop(socket.AF_INET6, packet[24:40]), 0))
    got = 0
    while got < want:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([rx], [], [], left)[0]:
            break
        frame, addr = rx.recvfrom(65535)
        if addr[2] != socket.PACKET_HOST or frame[12:14] != b"\x86\xdd":
            continue
        ip = frame[14:]
        if ip[6] == 58 and not (errors and ip[40] < 128):  # ICMPv6 (ND, RAs): not what the tests wait for
            continue
        print(json.dumps({"hex": ip.hex()}), flush=True)
        got += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
