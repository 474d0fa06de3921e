# Connection plugin of mip6-testbed: run tasks inside an emulated node (a Mininet host).
from __future__ import annotations

DOCUMENTATION = """
    name: mip6_nsenter
    short_description: run tasks inside a lab node's network and mount namespaces
    description:
        - The builtin C(local) connection, with every command run through
          C(nsenter --target PID --net --mount) and every file transferred through
          C(/proc/PID/root), so a task sees the node's interfaces and its private
          directories (the agents' key directory) and nothing of the other nodes.
        - PID is a process that holds the node's namespaces (the Mininet node's shell).
          If I(mip6_node_start_time) is given, the process must still have that start time
          (clock ticks since boot, field 22 of /proc/PID/stat), so that a pid reused by
          another process is refused instead of entered.
    author: mip6-testbed
    options:
        node_pid:
            description: pid of a process inside the node
            type: int
            required: true
            vars:
                - name: mip6_node_pid
        node_start_time:
            description: start time of that process (field 22 of /proc/PID/stat)
            type: int
            vars:
                - name: mip6_node_start_time
        nsenter:
            description: the nsenter program
            type: str
            default: nsenter
            vars:
                - name: mip6_nsenter
    extends_documentation_fragment:
        - connection_pipelining
"""

import os
import shlex

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.connection.local import Connection as LocalConnection


class Connection(LocalConnection):
    transport = "mip6_nsenter"
    has_pipelining = True

    def _node(self) -> int:
        pid = int(self.get_option("node_pid"))
        start = self.get_option("node_start_time")
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            raise AnsibleConnectionFailure(f"lab node process {pid} is gone") from None
        if start is not None and int(stat[stat.rindex(b")") + 2:].split()[19]) != int(start):
            raise AnsibleConnectionFailure(f"pid {pid} is no longer the lab node's process")
        return pid

    def _connect(self):
        self._node()
        return super()._connect()

    def exec_command(self, cmd, in_data=None, sudoable=True):
        pid = self._node()
        wrapped = " ".join([shlex.quote(self.get_option("nsenter")), "--target", str(pid), "--net", "--mount",
                            "--", "/bin/sh", "-c", shlex.quote(cmd if isinstance(cmd, str) else cmd.decode())])
        return super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)

    def _in_node(self, path: str) -> bytes:
        if not os.path.isabs(path):
            raise AnsibleError(f"mip6_nsenter: {path!r} is not an absolute path")
        return to_bytes(f"/proc/{self._node()}/root{path}", errors="surrogate_or_strict")

    def put_file(self, in_path, out_path):
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        try:
            with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as src:
                fd = os.open(self._in_node(out_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as dst:
                    while chunk := src.read(1 << 16):
                        dst.write(chunk)
        except OSError as exc:
            raise AnsibleError(f"failed to transfer a file to {out_path!r} in the node: {exc.strerror}") from None

    def fetch_file(self, in_path, out_path):
        try:
            with open(self._in_node(in_path), "rb") as src, open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as dst:
                while chunk := src.read(1 << 16):
                    dst.write(chunk)
        except OSError as exc:
            raise AnsibleError(f"failed to fetch {in_path!r} from the node: {exc.strerror}") from None
