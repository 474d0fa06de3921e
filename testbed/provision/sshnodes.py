"""sshd in lab nodes standing in for real machines, so the SSH path of the playbooks runs for real.

    with SshNodes(lab, ["mn", "cn", "ha"]) as ssh:            # sshd in each, keys generated
        keys = AnsibleKeys(reach=ssh.reach())                   # Ansible connects over SSH
        ssh.write_inventory(path)                                # or an inventory file for `testbed keys`

Each node gets Debian's sshd (``/usr/sbin/sshd``, started with ``lab.popen``: stopped with the
lab) on port 22 of its own namespace, with a host key generated for it, root login by a
generated client key only, no PAM, no passwords. The SSH client runs in the namespace of
``via`` (a lab router, default ``core``): its connections cross the lab's links and never leave
the lab. Host keys are pinned (``StrictHostKeyChecking yes`` with a known_hosts file of the
generated keys); nothing of the user's ``~/.ssh`` is read or written. Everything lives in a
0700 directory removed on exit (and by ``testbed lab clean`` after a crash).
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from testbed.errors import TestbedError
from testbed.lab.errors import LabTimeout
from testbed.lab.netns import socket_in_netns

SSHD = "/usr/sbin/sshd"
READY_TIMEOUT_S = 10.0
SSHD_CONFIG = """\
Port 22
ListenAddress ::
AddressFamily inet6
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
PrintMotd no
UseDNS no
AcceptEnv none
Subsystem sftp internal-sftp
"""


class SshNodes:
    def __init__(self, lab, nodes: list[str], *, via: str = "core", addresses: dict[str, str] | None = None) -> None:
        if not shutil.which("ssh-keygen") or not os.path.exists(SSHD) or not shutil.which("ssh"):
            raise TestbedError("the SSH path needs Debian's openssh-server and openssh-client "
                               "(scripts/install installs them)")
        self.lab = lab
        self.nodes = list(nodes)
        self.via = via
        self.dir = Path()
        self.addresses: dict[str, str] = {}
        self.overrides = dict(addresses or {})  # node -> the address to reach it by (e.g. a management NIC)

    def __enter__(self) -> SshNodes:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _keygen(self, path: Path, comment: str) -> str:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                       check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        return Path(f"{path}.pub").read_text().strip()

    def start(self) -> None:
        lab = self.lab
        self.dir = Path(tempfile.mkdtemp(prefix=f"mip6-ssh-{lab.run_id}-"))
        lab.state.add_path(self.dir)
        client_pub = self._keygen(self.dir / "client.key", f"mip6-testbed controller {lab.run_id}")
        (self.dir / "authorized_keys").write_text(client_pub + "\n")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        known = []
        for node in self.nodes:
            host_pub = self._keygen(self.dir / f"{node}.host.key", f"{node} {lab.run_id}")
            config = self.dir / f"{node}.sshd_config"
            config.write_text(SSHD_CONFIG.format(host_key=self.dir / f"{node}.host.key",
                                                 authorized_keys=self.dir / "authorized_keys"))
            check = lab.run(node, [SSHD, "-t", "-f", str(config)], tag="sshd-check")
            if check.returncode != 0:
                raise TestbedError(f"sshd refused its configuration on {node}: {' '.join(check.stderr.split())[:200]}")
            lab.popen(node, [SSHD, "-D", "-e", "-f", str(config)], tag="sshd")
            self.addresses[node] = self._address(node)
            known.append(f"{self.addresses[node]} {' '.join(host_pub.split()[:2])}")
        (self.dir / "known_hosts").write_text("\n".join(known) + "\n")
        via_pid = lab.node(self.via).pid
        wrapper = self.dir / "ssh"
        wrapper.write_text(f"#!/bin/sh\n# ssh from inside lab node {self.via}\n"
                           f"exec nsenter --target {via_pid} --net -- {shlex.quote(shutil.which('ssh'))} \"$@\"\n")
        wrapper.chmod(0o700)
        for node in self.nodes:
            self._wait_listening(node)

    def _address(self, node: str) -> str:
        if node in self.overrides:
            return self.overrides[node]
        plan = self.lab.addresses
        if node in plan.mobiles:
            prefix = plan.segments[self.lab.location(node)].subnet
            return plan.expected_coa(node, prefix)
        address = plan.primary_address(node)
        if address is None:
            raise TestbedError(f"node {node} has no static address to reach it by")
        return address

    def _wait_listening(self, node: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        pid = self.lab.node(self.via).pid
        while True:
            sock = socket_in_netns(pid, socket.AF_INET6, socket.SOCK_STREAM)
            try:
                sock.settimeout(1.0)
                sock.connect((self.addresses[node], 22))
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise LabTimeout(f"sshd on {node} did not accept connections from {self.via} "
                                     f"within {READY_TIMEOUT_S:g} s") from None
                time.sleep(0.05)
            finally:
                sock.close()

    def reach(self) -> dict[str, dict]:
        """Per node the Ansible connection variables that reach it over SSH."""
        common = " ".join(["-F", "/dev/null", "-o", f"UserKnownHostsFile={self.dir / 'known_hosts'}",
                           "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                           "-o", "ConnectTimeout=10"])
        return {node: {
            "ansible_connection": "ssh", "ansible_host": self.addresses[node], "ansible_port": 22,
            "ansible_user": "root", "ansible_ssh_private_key_file": str(self.dir / "client.key"),
            "ansible_ssh_executable": str(self.dir / "ssh"), "ansible_ssh_common_args": common,
            "ansible_ssh_transfer_method": "piped", "ansible_python_interpreter": "/usr/bin/python3",
        } for node in self.nodes}

    def write_inventory(self, path: Path, *, pairs: list[tuple[str, str]] | None = None) -> Path:
        """An ordinary SSH inventory of these nodes (like playbooks/inventory/ssh.example.yml)."""
        from testbed.provision.inventory import lab_inventory, nodes_of_lab

        nodes = [n for n in nodes_of_lab(self.lab) if n.name in self.nodes]
        doc = lab_inventory(nodes, pairs=pairs, reach=self.reach()).source
        path.write_text(yaml.safe_dump(doc, default_flow_style=False, sort_keys=False))
        return path

    def close(self) -> None:
        for proc in self.lab.processes:
            if proc.tag == "sshd":
                proc.stop()
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)
