"""Provisioning without a lab: the key set's checks (R1, R3, R10), the key store, the plan of
files per node, inventories, and the playbooks themselves (syntax, lint, the apt list)."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed.errors import ConfigError
from testbed.mip6.keys import dump, generate
from testbed.mip6.mnha import dump_mn_ha, generate_mn_ha
from testbed.provision.api import key_plan, secret_texts
from testbed.provision.inventory import from_hosts, load_inventory, parse_pairs
from testbed.provision.keyset import Peers, generate_keyset, load_store, rekeyed, save_store
from testbed.provision.runner import PLAYBOOK_DIR, syntax_check

ROOT = Path(__file__).resolve().parents[2]
PEERS = Peers({"mn1": ("2001:db8:1::101", "2001:db8:1::1"), "mn2": ("2001:db8:1::102", "2001:db8:1::1")},
              {"cn": "2001:db8:e:1::2"}, (("mn1", "cn"), ("mn2", "cn")))


def write_0600(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def test_generated_set_passes_and_every_key_differs():
    keyset = generate_keyset(PEERS)
    keyset.check(PEERS)
    secrets = [d.kcn for d in keyset.preconfigured.values()] + [s.key for s in keyset.mn_ha.values()]
    assert len(set(secrets)) == len(secrets) == 4
    assert "kcn" not in repr(keyset) and keyset.preconfigured[("mn1", "cn")].kcn.hex() not in repr(keyset)


@pytest.mark.parametrize("change, reason", [
    (lambda ks: ks.preconfigured.__setitem__(("mn2", "cn"), dataclasses.replace(
        ks.preconfigured[("mn2", "cn")], kcn=ks.preconfigured[("mn1", "cn")].kcn)), "same key"),
    (lambda ks: ks.mn_ha.__setitem__("mn1", dataclasses.replace(
        ks.mn_ha["mn1"], key=ks.preconfigured[("mn1", "cn")].kcn)), "same key"),
    (lambda ks: ks.preconfigured.__setitem__(("mn1", "cn"), dataclasses.replace(
        ks.preconfigured[("mn1", "cn")], kcn=bytes(range(1, 21)))), "progression"),
    (lambda ks: ks.preconfigured.__setitem__(("mn1", "cn"), dataclasses.replace(
        ks.preconfigured[("mn1", "cn")], correspondent="2001:db8:e:9::2")), "correspondent"),
    (lambda ks: ks.mn_ha.pop("mn2"), "no MN-HA key for mobile node mn2"),
])
def test_a_bad_set_is_refused_in_one_line(change, reason):
    keyset = generate_keyset(PEERS)
    change(keyset)
    with pytest.raises(ConfigError) as info:
        keyset.check(PEERS)
    message = str(info.value)
    assert reason in message and "\n" not in message
    for data in keyset.preconfigured.values():
        assert data.kcn.hex() not in message


def test_store_round_trip_modes_and_user_files(tmp_path):
    store = tmp_path / "keys"
    keyset, missing = load_store(store, PEERS, generate_missing=True)
    assert len(missing) == 4
    save_store(store, keyset, PEERS, only=missing)
    assert stat.S_IMODE(store.stat().st_mode) == 0o700 and stat.S_IMODE((store / "mn1").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in store.rglob("*.yaml"))
    again, missing = load_store(store, PEERS, generate_missing=False)
    assert not missing and again.key_ids() == keyset.key_ids()
    with pytest.raises(ConfigError, match="already exists"):
        save_store(store, keyset, PEERS)  # never overwritten but by a rekey
    # A user's own file with a weak key: refused, named, nothing generated.
    weak = keyset.preconfigured[("mn2", "cn")]
    write_0600(store / "mn2" / "cn-cn.yaml", dump(weak).replace(weak.kcn.hex(), "ab" * 20))
    with pytest.raises(ConfigError, match=r"mn2/cn-cn\.yaml: Kcn is one repeated octet"):
        load_store(store, PEERS, generate_missing=True)
    os.chmod(store / "mn2" / "cn-cn.yaml", 0o644)
    with pytest.raises(ConfigError, match="0644 lets group or others"):
        load_store(store, PEERS, generate_missing=True)
    os.chmod(store, 0o755)
    with pytest.raises(ConfigError, match="key store .*must be 0700"):
        load_store(store, PEERS, generate_missing=True)


def test_rekey_replaces_only_the_named_pairs(tmp_path):
    keyset = generate_keyset(PEERS)
    fresh = rekeyed(keyset, PEERS, [("mn1", "cn")])
    assert fresh.preconfigured[("mn1", "cn")].kcn != keyset.preconfigured[("mn1", "cn")].kcn
    assert fresh.preconfigured[("mn1", "cn")].home_nonce != keyset.preconfigured[("mn1", "cn")].home_nonce
    assert fresh.preconfigured[("mn2", "cn")] == keyset.preconfigured[("mn2", "cn")]
    assert fresh.mn_ha == keyset.mn_ha
    with pytest.raises(ConfigError, match="not enabled"):
        rekeyed(keyset, PEERS, [("mn1", "cn9")])


def test_plan_names_files_per_node_and_holds_no_secret():
    hosts = {"mn1": {"mip6_home_address": "2001:db8:1::101", "mip6_home_agent": "2001:db8:1::1",
                     "mip6_precomputed": ["cn"]},
             "mn2": {"mip6_home_address": "2001:db8:1::102", "mip6_home_agent": "2001:db8:1::1"},
             "cn": {"mip6_address": "2001:db8:e:1::2"}, "ha": {"mip6_address": "2001:db8:1::1"}, "att": {}}
    inventory = from_hosts(hosts, {"mn1": "mn", "mn2": "mn", "cn": "cn", "ha": "ha", "att": "other"}, {})
    assert inventory.pairs == [("mn1", "cn")]
    plan = key_plan(inventory)
    names = {h: sorted(f["name"] for f in p["files"]) for h, p in plan.items()}
    assert names == {"mn1": ["mn-ha-mn1.yaml", "preconfigured-cn.yaml"], "mn2": ["mn-ha-mn2.yaml"],
                     "cn": ["preconfigured-mn1.yaml"], "ha": ["mn-ha-mn1.yaml", "mn-ha-mn2.yaml"]}
    keyset = generate_keyset(inventory.peers())
    assert keyset.preconfigured[("mn1", "cn")].kcn.hex() not in str(plan)
    texts = secret_texts(keyset)
    assert set(texts) == {f["id"] for p in plan.values() for f in p["files"]}
    with pytest.raises(ConfigError, match="mip6_home_agent is missing"):
        from_hosts({"mn": {"mip6_home_address": "2001:db8:1::100"}}, {"mn": "mn"}, {})
    with pytest.raises(ConfigError, match="'cn9' is not a correspondent"):
        from_hosts({**hosts, "mn2": {**hosts["mn2"], "mip6_precomputed": ["cn9"]}},
                   {"mn1": "mn", "mn2": "mn", "cn": "cn", "ha": "ha"}, {})
    assert parse_pairs(["mn1:cn"]) == [("mn1", "cn")]
    with pytest.raises(ConfigError, match="expected MN:CN"):
        parse_pairs(["mn1"])


def test_the_example_ssh_inventory_reads():
    inventory = load_inventory(PLAYBOOK_DIR / "inventory" / "ssh.example.yml")
    assert set(inventory.mobiles) and set(inventory.correspondents) and set(inventory.home_agents)
    assert inventory.pairs
    for host, hv in inventory.hosts_vars.items():
        assert hv["ansible_connection"] == "ssh" and hv["ansible_remote_tmp"] == hv.get("mip6_key_dir", "/etc/mip6")


def test_bad_user_keys_stop_the_cli_before_any_node(tmp_path):
    store = tmp_path / "keys"
    inventory = PLAYBOOK_DIR / "inventory" / "ssh.example.yml"
    parsed = load_inventory(inventory)
    mn, cn = parsed.pairs[0]
    data = generate(parsed.mobiles[mn][0], parsed.correspondents[cn])
    write_0600(store / mn / f"cn-{cn}.yaml", dump(data).replace(data.kcn.hex(), data.kcn.hex()[:38]))
    store.chmod(0o700)
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "keys", "push", "--inventory", str(inventory),
                           "--keys", str(store), "--generate"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "19 octets, R1 needs at least 20" in done.stderr
    assert not (store / mn / "mn-ha.yaml").exists()  # nothing generated either


def test_mn_ha_key_file_of_the_store_is_the_agents_format(tmp_path):
    sa = generate_mn_ha("2001:db8:1::101", "2001:db8:1::1")
    write_0600(tmp_path / "k" / "mn1" / "mn-ha.yaml", dump_mn_ha(sa))
    (tmp_path / "k").chmod(0o700)
    keyset, missing = load_store(tmp_path / "k", PEERS, generate_missing=True)
    assert keyset.mn_ha["mn1"].key == sa.key and len(missing) == 3


@pytest.mark.parametrize("playbook", ["keys.yml", "rekey.yml", "lab.yml", "multihost.yml"])
def test_playbook_syntax(playbook):
    rc, output = syntax_check(playbook)
    assert rc == 0, output


def test_ansible_lint_if_installed():
    lint = Path(sys.executable).parent / "ansible-lint"
    if not lint.exists():
        pytest.skip("ansible-lint is not installed (pip install ansible-lint)")
    done = subprocess.run([str(lint), "--offline", "-q", "keys.yml", "rekey.yml", "lab.yml", "multihost.yml"], cwd=PLAYBOOK_DIR,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_lab_playbook_installs_the_same_packages_as_scripts_install():
    script = (ROOT / "scripts" / "install").read_text()
    listed = re.search(r"APT_PACKAGES=\(([^)]*)\)", script).group(1).split()
    play = yaml.safe_load((PLAYBOOK_DIR / "lab.yml").read_text())[0]
    assert play["vars"]["mip6_apt_packages"] == listed


def test_lab_playbook_in_check_mode_on_this_host(tmp_path):
    system_python = "/usr/bin/python3"
    probe = subprocess.run([system_python, "-c", "import apt"], capture_output=True) if os.path.exists(system_python) else None
    if probe is None or probe.returncode != 0:
        pytest.skip("Debian's python3 with python3-apt is needed for the apt module's check mode")
    from testbed.provision.runner import ansible_env

    env = {**os.environ, **ansible_env(tmp_path)}
    (tmp_path / "secret" / "tmp").mkdir(parents=True)
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--check", "-i", "localhost,",
                           "-c", "local", "-e", f"ansible_python_interpreter={system_python}",
                           str(PLAYBOOK_DIR / "lab.yml")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "failed=0" in done.stdout


def _adhoc(tmp_path, pid: int, start: int | None) -> subprocess.CompletedProcess:
    from testbed.provision.runner import ansible_env

    (tmp_path / "secret" / "tmp").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **ansible_env(tmp_path), "ANSIBLE_CONNECTION_PLUGINS": str(PLAYBOOK_DIR / "connection_plugins")}
    extra = [f"mip6_node_pid={pid}", f"ansible_python_interpreter={sys.executable}"]
    if start is not None:
        extra.append(f"mip6_node_start_time={start}")
    return subprocess.run([str(Path(sys.executable).parent / "ansible"), "all", "-i", "node,", "-c", "mip6_nsenter",
                           *[a for e in extra for a in ("-e", e)], "-m", "ansible.builtin.ping"],
                          capture_output=True, text=True, env=env, timeout=120)


def test_connection_plugin_refuses_a_reused_pid(tmp_path):
    from testbed.lab.state import process_start_time

    me = os.getpid()  # a process in this namespace, standing in for a node's shell
    real = process_start_time(me)
    done = _adhoc(tmp_path, me, real + 1)
    assert done.returncode != 0 and "no longer the lab node's process" in done.stdout + done.stderr
    if os.geteuid() == 0:  # entering namespaces needs root: then the right start time works
        done = _adhoc(tmp_path, me, real)
        assert done.returncode == 0 and '"ping": "pong"' in done.stdout, done.stdout + done.stderr
