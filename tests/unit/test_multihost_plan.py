"""The hosts backend's reading of an inventory and its SSH command lines (no machine needed)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed.errors import ConfigError
from testbed.experiments.multihost import HostsPlan
from testbed.experiments.sshhost import SshHost

ROOT = Path(__file__).resolve().parents[2]
MULTIHOST = ROOT / "playbooks" / "inventory" / "multihost.yml"


def test_the_vagrant_inventory_is_a_hosts_plan():
    plan = HostsPlan.load(MULTIHOST)
    assert plan.names == {"mn": "mn", "cn": "cn", "ha": "ha"}
    assert plan.access == {"ar1": "a1", "ar2": "a2"} and plan.home_prefix == "2001:db8:1::/64"
    assert plan.cn_address == "2001:db8:c::12" and plan.home_agent == "2001:db8:1::1"
    assert plan.testbed("mn") == ["/vagrant/.venv/bin/testbed"] and plan.cn_capture == "core"


def test_ssh_command_lines_follow_ansibles_connection_variables():
    host = SshHost("mn", {"ansible_host": "192.168.56.15", "ansible_port": 2222, "ansible_user": "vagrant",
                          "ansible_become": True, "ansible_ssh_private_key_file": "/k/mn",
                          "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -F /dev/null"})
    argv = host.remote("echo 'a b'")
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"]
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "vagrant"
    assert argv[argv.index("-i") + 1] == "/k/mn" and "StrictHostKeyChecking=no" in argv
    assert argv[-3:-1] == ["192.168.56.15", "--"]
    assert shlex.split(argv[-1]) == ["sudo", "-n", "sh", "-c", "echo 'a b'"]  # become: sudo, quoted once
    root = SshHost("cn", {"ansible_user": "root", "ansible_become": True, "ansible_ssh_executable": "/x/ssh"})
    assert root.remote("true")[0] == "/x/ssh" and shlex.split(root.remote("true")[-1]) == ["sh", "-c", "true"]
    assert root.remote("true")[-3] == "cn"  # no ansible_host: the inventory name


def _inventory(tmp_path, changes: dict) -> Path:
    doc = yaml.safe_load(MULTIHOST.read_text())
    for (group, host), hv in changes.items():
        doc["all"]["children"][group]["hosts"][host] = hv
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("group, host, change, words", [
    ("mip6_mn", "mn", {"mip6_access": {"ar1": "a1"}}, "mip6_access must map two access routers"),
    ("mip6_cn", "cn", {"mip6_capture": None}, "mip6_capture (the NIC to capture on) is missing"),
    ("mip6_ha", "ha", {"mip6_testbed_argv": "testbed"}, "mip6_testbed_argv"),
])
def test_an_inventory_the_backend_cannot_use_is_one_line(tmp_path, group, host, change, words):
    doc = yaml.safe_load(MULTIHOST.read_text())
    hv = {**doc["all"]["children"][group]["hosts"][host], **change}
    path = _inventory(tmp_path, {(group, host): hv})
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        HostsPlan.load(path)
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "experiment", "handover", "--inventory", str(path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_missing_inventory_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "experiment", "handover", "--inventory",
                           str(tmp_path / "nope.yml")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no such file" in done.stderr and done.stderr.count("\n") == 1
