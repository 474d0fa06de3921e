"""The Vagrantfile and the multi-host inventory, checked without a VM provider: Ruby parses the
file, Vagrant validates every profile, the multi-host profile defines the inventory's machines,
and Ansible reads the inventory and the playbook the VMs run.

Booting the VMs needs VirtualBox or libvirt, which CI does not have (docs/vagrant.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed.provision.inventory import load_inventory

ROOT = Path(__file__).resolve().parents[2]
VAGRANTFILE = ROOT / "Vagrantfile"
INVENTORY = ROOT / "playbooks" / "inventory" / "multihost.yml"
PROFILES = ("lab", "multihost")
ANSIBLE_BIN = Path(sys.executable).parent


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (scripts/install installs Debian's ruby and vagrant)")
    return path


def _vagrant(tmp_path: Path, *args: str, profile: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIP6_", "VAGRANT_"))}
    env["VAGRANT_HOME"] = str(tmp_path / "vagrant-home")  # nothing of the user's ~/.vagrant.d
    env["VAGRANT_CHECKPOINT_DISABLE"] = "1"
    if profile is not None:
        env["MIP6_PROFILE"] = profile
    return subprocess.run([_need("vagrant"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)


def test_ruby_parses_the_vagrantfile():
    done = subprocess.run([_need("ruby"), "-c", str(VAGRANTFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Syntax OK" in done.stdout, done.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_vagrant_validates_every_profile(tmp_path, profile):
    done = _vagrant(tmp_path, "validate", "--ignore-provider", profile=profile)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout
    machines = set(re.findall(r"==> (\w+): Ignoring provider config", done.stdout))
    if profile == "lab":
        assert machines == {"lab"}
    else:  # one VM per host of the inventory, nothing else
        hosts = yaml.safe_load(INVENTORY.read_text())["all"]["children"]
        assert machines == {h for group in hosts.values() for h in group["hosts"]} == {"mn", "cn", "ha", "ar1", "ar2"}


def test_an_unknown_profile_is_one_line_and_an_error(tmp_path):
    done = _vagrant(tmp_path, "validate", "--ignore-provider", profile="nope")
    assert done.returncode != 0
    assert "MIP6_PROFILE=nope: not a profile" in done.stderr + done.stdout


def test_vagrantfile_provisions_with_the_distributions_ansible_and_lab_yml():
    text = VAGRANTFILE.read_text()
    assert 'apt-get install -y -q --no-install-recommends ansible' in text
    assert "ansible.install = false" in text and 'ansible.playbook = "playbooks/lab.yml"' in text
    for provider in ("virtualbox", "libvirt"):
        assert f'node.vm.provider "{provider}"' in text
    assert 'synced_folder ".", "/vagrant"' in text


def test_multihost_inventory_lists_with_ansible_inventory():
    done = subprocess.run([str(ANSIBLE_BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    for group in ("mip6_mn", "mip6_cn", "mip6_ha", "mip6_ar"):
        assert listed[group]["hosts"], group
    hostvars = listed["_meta"]["hostvars"]
    mn = hostvars["mn"]
    assert set(mn["mip6_access"]) == {"ar1", "ar2"}
    macs = [link["mac"] for hv in hostvars.values() for link in hv["mip6_links"]]
    assert len(macs) == len(set(macs))  # the playbook finds each NIC by its MAC
    # the MN's two NICs: one on each access network, the second one down at first
    links = {link["name"]: link for link in mn["mip6_links"]}
    assert set(links) == set(mn["mip6_access"].values()) and sum(bool(v.get("down")) for v in links.values()) == 1


def test_multihost_inventory_is_one_keys_push_reads():
    inventory = load_inventory(INVENTORY)
    assert set(inventory.mobiles) == {"mn"} and set(inventory.correspondents) == {"cn"}
    assert inventory.pairs == [("mn", "cn")] and inventory.home_agent_of("mn") == "ha"


def test_multihost_playbook_syntax():
    done = subprocess.run([str(ANSIBLE_BIN / "ansible-playbook"), "--syntax-check", "-i", str(INVENTORY),
                           str(ROOT / "playbooks" / "multihost.yml")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_multihost_radvd_configuration_parses(tmp_path):
    radvd = shutil.which("radvd") or ("/usr/sbin/radvd" if os.path.exists("/usr/sbin/radvd") else None)
    if radvd is None:
        pytest.skip("radvd is not installed (scripts/install installs it)")
    import jinja2

    template = jinja2.Template((ROOT / "playbooks" / "templates" / "radvd.conf.j2").read_text())
    hostvars = {name: hv for group in yaml.safe_load(INVENTORY.read_text())["all"]["children"].values()
                for name, hv in group["hosts"].items()}
    routers = {name: hv for name, hv in hostvars.items() if "mip6_radvd" in hv}
    assert set(routers) == {"ha", "ar1", "ar2"}
    for name, hv in routers.items():
        conf = tmp_path / f"{name}.conf"
        conf.write_text(template.render(inventory_hostname=name, **hv))
        done = subprocess.run([radvd, "--configtest", "-C", str(conf), "-m", "stderr"], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert ("AdvHomeAgentFlag on" in conf.read_text()) == (name == "ha")
