"""A TUN device through which the home agent's node hands the agent the packets routed to
registered home addresses (the kernel has no Mobile IPv6 or ip6ip6 here, docs/host.md)."""

from __future__ import annotations

import fcntl
import os
import struct

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


class TunDevice:
    def __init__(self, name: str) -> None:
        if not 0 < len(name) < 16:
            raise ValueError(f"interface name {name!r} must be 1-15 characters")
        self.name = name
        self._fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(self._fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        except OSError:
            os.close(self._fd)
            raise

    def fileno(self) -> int:
        return self._fd

    def drain(self):
        """Every waiting packet (whole IPv6 packets)."""
        while True:
            try:
                data = os.read(self._fd, 65535)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            yield data

    def close(self) -> None:
        os.close(self._fd)  # the device goes away with its last file descriptor
