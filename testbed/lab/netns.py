"""Sockets inside a node's network namespace, without forking.

A socket belongs to the namespace it was created in, whoever uses it later. A short-lived
thread joins the node's namespace (``setns`` on ``/proc/<pid>/ns/net``; a network namespace
can be joined per thread), creates the socket and ends; the socket then works from any
thread of this process. (pyroute2's ``netns.create_socket`` forks a child process for this:
slower on a loaded machine, and its SIGTERM to the child can reach the parent's Python
signal handlers in the child.) Netlink messages are still parsed with pyroute2.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(pid: int) -> str:
    return f"/proc/{pid}/ns/net"


def socket_in_netns(pid: int, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket created in the network namespace of process ``pid``."""
    result: dict[str, object] = {}

    def create() -> None:
        try:
            fd = os.open(netns_path(pid), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into the namespace of pid {pid}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result["socket"] = socket.socket(family, kind, proto)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result["error"] = exc
        # The thread ends here, in the node's namespace; nothing else runs on it.

    thread = threading.Thread(target=create, name=f"netns-{pid}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["socket"]  # type: ignore[return-value]
