"""Issue 10's acceptance in real labs: keys pushed with Ansible (ansible-runner, keys.yml and
rekey.yml) into Mininet nodes through their namespaces and over SSH, agents binding with them."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from testbed.agent.events import Reloaded
from testbed.diag.capture import read_frames
from testbed.diag.verify import VALID, KeyRing, verify_frames
from testbed.lab.agents import LabAgents
from testbed.lab.lab import Lab
from testbed.mip6.constants import IPPROTO_MH
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.events import BindingDeleted, BindingExpired, Drop
from testbed.mip6.keys import dump, generate
from testbed.mip6.messages import BindingUpdate
from testbed.mip6.packet import build_packet
from testbed.mip6.sealing import seal_bad
from testbed.provision.api import push_keys
from testbed.provision.inventory import lab_inventory, nodes_of_lab
from testbed.provision.keyset import load_store
from testbed.provision.labkeys import AnsibleKeys
from testbed.provision.sshnodes import SshNodes

pytestmark = pytest.mark.lab

KEY_DIR = "/etc/mip6"
TESTBED = [sys.executable, "-m", "testbed.cli"]


def run_testbed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TESTBED, *args], capture_output=True, text=True, timeout=180)


def key_dir_listing(lab, node: str) -> dict[str, tuple[str, str, str]]:
    """name -> (mode, owner, sha256) of the files in ``node``'s key directory, as the node sees it."""
    done = lab.run(node, ["sh", "-c", f"cd {KEY_DIR} && for f in * .[!.]*; do [ -e \"$f\" ] && "
                                      "echo \"$f $(stat -c '%a %U' \"$f\") $(sha256sum < \"$f\" | cut -c1-64)\"; done; true"],
                   tag="ls-keys")
    assert done.returncode == 0, done.stderr
    return {name: (mode, owner, digest) for name, mode, owner, digest in
            (line.split() for line in done.stdout.splitlines() if line.strip())}


def mh_types(pcap: Path) -> set[str]:
    return {r.mh_type for r in verify_frames(read_frames(str(pcap)), KeyRing())}


def test_push_into_a_running_handover_lab(tmp_path):
    """testbed keys push --lab: bad keys refused before any node is touched; then the keys land
    0600 in the nodes' private key directories only; a second push changes nothing; the agents
    bind with the precomputed Kbm (no HoTI/CoTI on the wire)."""
    store = tmp_path / "keys"
    with Lab("handover", run_dir=tmp_path / "run") as lab:
        run = str(lab.run_dir)
        empty = {node: key_dir_listing(lab, node) for node in lab.addresses.nodes}
        assert all(listing == {} for listing in empty.values()), empty

        # User keys that are weak, short or duplicated: one line, exit 2, no node touched.
        plan = lab.addresses
        home, cn = plan.home_address("mn"), plan.correspondents["cn"]
        good = generate(home, cn)
        (store / "mn").mkdir(parents=True, mode=0o700)
        store.chmod(0o700)
        bad_texts = {
            "low entropy": dump(good).replace(good.kcn.hex(), "01" * 20),
            "20 octets": dump(good).replace(good.kcn.hex(), good.kcn.hex()[:38]),
        }
        for why, text in bad_texts.items():
            path = store / "mn" / "cn-cn.yaml"
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            done = run_testbed("keys", "push", "--lab", run, "--keys", str(store), "--generate")
            assert done.returncode == 2, (why, done.stdout, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and "cn-cn.yaml" in lines[0] and why.split()[-1].lower() in lines[0].lower(), lines
            assert "Traceback" not in done.stderr and good.kcn.hex() not in done.stderr
        # A Kcn equal to the MN-HA key (duplicated across peers, R10).
        path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(dump(good))
        mnha = (f'home_address: "{home}"\nhome_agent: "{plan.home_agent}"\nspi: "4097"\nkey: "{good.kcn.hex()}"\n')
        fd = os.open(store / "mn" / "mn-ha.yaml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(mnha)
        done = run_testbed("keys", "push", "--lab", run, "--keys", str(store))
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "same key" in done.stderr and "R10" in done.stderr
        assert {node: key_dir_listing(lab, node) for node in plan.nodes} == empty  # nothing touched
        (store / "mn" / "mn-ha.yaml").unlink()

        # The push: the user's pair file is kept, the MN-HA key generated.
        done = run_testbed("keys", "push", "--lab", run, "--keys", str(store), "--generate", "--json")
        assert done.returncode == 0, done.stderr
        first = json.loads(done.stdout)
        assert first["ok"] and first["changed"] == 3 and first["keys"] == {"mn:cn": good.key_id}
        digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (store / "mn").iterdir()}
        listings = {node: key_dir_listing(lab, node) for node in plan.nodes}
        assert listings["mn"] == {"mn-ha-mn.yaml": ("600", "root", digests["mn-ha.yaml"]),
                                  "preconfigured-cn.yaml": ("600", "root", digests["cn-cn.yaml"])}
        assert listings["cn"] == {"preconfigured-mn.yaml": ("600", "root", digests["cn-cn.yaml"])}
        assert listings["ha"] == {"mn-ha-mn.yaml": ("600", "root", digests["mn-ha.yaml"])}
        assert listings["att"] == {}  # the attacker has no key file
        for node in ("core", "ar1", "ar2"):
            assert listings[node] == {}, node
        assert not [f for f in os.listdir(KEY_DIR) if f.endswith(".yaml")]  # not in the root namespace either

        again = run_testbed("keys", "push", "--lab", run, "--keys", str(store))
        assert again.returncode == 0 and "no change" in again.stdout, again.stdout + again.stderr
        check = run_testbed("keys", "check", "--lab", run, "--keys", str(store))
        assert check.returncode == 0 and "every node holds these keys" in check.stdout, check.stdout + check.stderr
        # A node that lost its file: check names it (exit 1, nothing changed), a push restores it.
        assert lab.run("cn", ["rm", f"{KEY_DIR}/preconfigured-mn.yaml"], tag="lose-key").returncode == 0
        check = run_testbed("keys", "check", "--lab", run, "--keys", str(store))
        assert check.returncode == 1 and "1 change needed on cn" in check.stdout, check.stdout + check.stderr
        assert "preconfigured-mn.yaml" not in key_dir_listing(lab, "cn")
        again = run_testbed("keys", "push", "--lab", run, "--keys", str(store))
        assert again.returncode == 0 and "1 change (" in again.stdout, again.stdout + again.stderr
        assert key_dir_listing(lab, "cn") == listings["cn"]
        # A node where the module fails (its key file's name taken by a directory): the push
        # fails naming the node and the module's reason, though the task's output is no_log.
        blocker = f"{KEY_DIR}/preconfigured-mn.yaml"
        assert lab.run("cn", ["sh", "-c", f"rm {blocker} && mkdir {blocker}"], tag="block").returncode == 0
        failed = run_testbed("keys", "push", "--lab", run, "--keys", str(store))
        assert failed.returncode != 0 and "cn:" in failed.stderr and blocker in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr and good.kcn.hex() not in failed.stdout + failed.stderr
        assert lab.run("cn", ["rmdir", blocker], tag="unblock").returncode == 0
        again = run_testbed("keys", "push", "--lab", run, "--keys", str(store))
        assert again.returncode == 0 and key_dir_listing(lab, "cn") == listings["cn"], again.stdout + again.stderr

        # The agents take the pushed files (the store's keys): only their configurations are new.
        cap = lab.capture("mn", plan.mobile("mn").intf)
        keys = AnsibleKeys(store=store)
        with LabAgents(lab, "precomputed", keys=keys) as agents:
            after = {node: key_dir_listing(lab, node) for node in ("mn", "cn", "ha")}
            for node in ("mn", "cn", "ha"):
                assert {k: v for k, v in after[node].items() if k != "agent.yaml"} == listings[node]
                assert after[node]["agent.yaml"][:2] == ("600", "root")
            assert keys.pushes[0].changed == 3  # one per node: its agent.yaml
            agents.wait(lambda: agents.mn_bound("mn"), 15, "the binding")
            assert agents.cn_binding("cn")["mechanism"] == "precomputed"
            assert [d.key_id for d in agents.preconfigured] == [good.key_id]
            ring = KeyRing(agents.preconfigured, agents.mn_ha)
        cap.stop()
        records = list(verify_frames(read_frames(str(cap.path)), ring))
        types = {r.mh_type for r in records}
        assert "BU" in types and "BA" in types
        assert not types & {"HoTI", "CoTI", "HoT", "CoT"}
        cn_bus = [r for r in records if r.mh_type == "BU" and r.dst == cn]
        assert cn_bus and all(r.auth == VALID for r in cn_bus)


# ---------------------------------------------------------------- the marker test


def secret_patterns(secrets: list[bytes]) -> dict[bytes, str]:
    """Every form a secret could take in a file or an environment: hex (either case), raw
    octets, base64 (standard and URL-safe, at each of the three alignments)."""
    out = {}
    for s in secrets:
        out[s.hex().encode()] = "hex"
        out[s.hex().upper().encode()] = "HEX"
        out[s] = "raw"
        for pad, skip in ((0, 0), (1, 2), (2, 3)):
            for enc in (base64.b64encode, base64.urlsafe_b64encode):
                core = enc(bytes(pad) + s)[skip:-4]
                out[core] = "base64"
    return out


class ProcessWatcher:
    """Reads the environment and command line of every process that appears while it runs."""

    def __init__(self) -> None:
        self.baseline = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        self.seen: dict[int, tuple[bytes, bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                pid = int(entry)
                if pid in self.baseline or pid == me or pid in self.seen:
                    continue
                try:
                    with open(f"/proc/{pid}/environ", "rb") as fh:
                        env = fh.read()
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        cmd = fh.read()
                except OSError:
                    continue
                if cmd:
                    self.seen[pid] = (env, cmd)
            time.sleep(0.005)


def files_written_since(roots: list[Path], since: float) -> list[Path]:
    out = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            for name in filenames:
                path = Path(dirpath, name)
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if path.is_file() and not path.is_symlink() and max(st.st_mtime, st.st_ctime) >= since \
                        and st.st_size < 64 << 20:
                    out.append(path)
    return out


def test_marker_no_secret_in_anything_the_run_or_ansible_runner_wrote(tmp_path, monkeypatch):
    """Generate, push, bind, rekey; then no Kcn, nonce or MN-HA key (old or new) in any file
    the run, Ansible or ansible-runner wrote, nor in the environment or arguments of any
    process started meanwhile."""
    import shutil

    import testbed.provision.runner as runner

    # Everything ansible-runner and Ansible left in a run's directory, just before it is removed
    # (all but the one 0600 secrets file the playbook reads): env/extravars, artifacts/*/command...
    snapshots = tmp_path / "runner-dirs"
    real_rmtree = shutil.rmtree

    def snapshot_then_remove(path, *args, **kwargs):
        if Path(path).name.startswith("mip6-ansible-"):
            real_copytree(path, snapshots / Path(path).name, symlinks=True,
                          ignore=lambda d, names: ["keys.yml"] if Path(d).name == "secret" else [])
        return real_rmtree(path, *args, **kwargs)

    real_copytree = shutil.copytree
    monkeypatch.setattr(runner.shutil, "rmtree", snapshot_then_remove)
    t0 = time.time() - 1
    # Where a run, Ansible or ansible-runner write (Ansible's home would be ~/.ansible).
    roots = [Path(p) for p in ("/tmp", "/dev/shm", "/var/tmp", "/run", str(Path.home() / ".ansible"))
             if os.path.isdir(p)]
    secrets: list[bytes] = []
    with ProcessWatcher() as watcher:
        with Lab("handover", run_dir=tmp_path / "run") as lab:
            keys = AnsibleKeys(record=lab.run_dir / "ansible")
            with LabAgents(lab, "precomputed", keys=keys) as agents:
                agents.wait(lambda: agents.mn_bound("mn"), 15, "the binding")
                secrets += [k for d in agents.preconfigured for k in (d.kcn, d.home_nonce, d.careof_nonce)]
                secrets += [sa.key for sa in agents.mn_ha]
                keys.rekey([("mn", "cn")])
                secrets += [k for d in keys.keyset.preconfigured.values() for k in (d.kcn, d.home_nonce, d.careof_nonce)]
                lab.move("mn", "ar2")
                coa = plan_coa = lab.addresses.expected_coa("mn", lab.addresses.segment("ar2").subnet)
                agents.wait(lambda: agents.mn_bound("mn") == coa, 10, "the binding under the new key")
            run_dir = lab.run_dir
            written = files_written_since([run_dir, *roots], t0)
    assert plan_coa and len(set(secrets)) == 7  # 2 x (Kcn and two nonces) and the MN-HA key, all different
    kept = list((run_dir / "ansible").rglob("*"))
    assert any("job_events" in str(p) for p in kept), "ansible-runner's events were not kept for the search"
    assert not any(p.name == "command" for p in kept)  # the environment dump is never kept
    # Ours only: a directory another process left (one killed mid-push) is `testbed lab clean`'s.
    assert not list(Path("/dev/shm").glob(f"mip6-ansible-{os.getpid()}.*")), \
        "a run directory of ansible-runner was left"
    runs = list(snapshots.iterdir())
    assert len(runs) == 2 and all((r / "runner" / "env" / "extravars").is_file() for r in runs)
    assert all(list((r / "runner" / "artifacts").rglob("command")) for r in runs)
    written += [p for p in snapshots.rglob("*") if p.is_file() and p not in written]
    patterns = secret_patterns(secrets)
    hits = []
    for path in written:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        hits += [f"{path}: {kind}" for pattern, kind in patterns.items() if pattern in data]
    names = {Path(cmd.split(b"\0")[0].decode(errors="replace")).name for _, cmd in watcher.seen.values()}
    assert {"nsenter", "ansible-playbook"} <= names or any("ansible-playbook" in c.decode(errors="replace")
                                                             for _, c in watcher.seen.values()), names
    for pid, (env, cmd) in watcher.seen.items():
        hits += [f"process {pid} ({cmd[:60]!r}): {kind}" for pattern, kind in patterns.items()
                 if pattern in env or pattern in cmd]
    assert len(written) > 20 and len(watcher.seen) > 20, (len(written), len(watcher.seen))
    assert hits == []


# ---------------------------------------------------------------- rekey while probes flow


def test_rekey_one_pair_while_probes_flow(tmp_path):
    """testbed's rekey (rekey.yml) for mn1-cn while the CN streams probes to mn1: the next
    binding uses the new Kbm, a BU under the old Kbm is refused afterwards, mn2 keeps its binding."""
    store = tmp_path / "keys"
    with Lab("corporate", run_dir=tmp_path / "run", n_mns=2, n_cns=1) as lab:
        plan = lab.addresses
        cn_addr = plan.correspondents["cn1"]
        cap = lab.capture("cn1", next(iter(plan.nodes["cn1"].interfaces)))
        keys = AnsibleKeys(store=store)
        with LabAgents(lab, "precomputed", keys=keys) as agents:
            for mn in ("mn1", "mn2"):
                agents.wait(lambda mn=mn: agents.mn_bound(mn), 20, f"{mn}'s binding")
            before = {mn: agents.cn_binding("cn1", mn) for mn in ("mn1", "mn2")}
            old = keys.keyset.preconfigured[("mn1", "cn1")]
            agents["cn1"].ctl("probe_start", home=plan.home_address("mn1"), rate=200)
            sent_before = agents["cn1"].ctl("probe_stop")["sent"]
            agents["cn1"].ctl("probe_start", home=plan.home_address("mn1"), rate=200)
            t_rekey = time.monotonic_ns()
            done = run_testbed("keys", "rekey", "--lab", str(lab.run_dir), "--keys", str(store),
                               "--pair", "mn1:cn1", "--json")
            assert done.returncode == 0, done.stdout + done.stderr
            result = json.loads(done.stdout)
            assert result["ok"] and set(result["hosts"]) == {"mn1", "cn1"}  # only the pair's nodes
            keyset, _ = load_store(store, keys.inventory.peers(), generate_missing=False)
            new = keyset.preconfigured[("mn1", "cn1")]
            assert result["rekeyed"]["mn1:cn1"] == {"old": old.key_id, "new": new.key_id}
            assert new.key_id != old.key_id and new.kcn != old.kcn and new.home_nonce != old.home_nonce
            assert keyset.preconfigured[("mn2", "cn1")] == keys.keyset.preconfigured[("mn2", "cn1")]
            reloads = [e for e in agents["cn1"].events() if isinstance(e, Reloaded) and e.t_ns > t_rekey]
            assert reloads, "the CN did not reload"
            assert [e for e in agents["mn1"].events() if isinstance(e, Reloaded) and e.t_ns > t_rekey]
            assert not [e for e in agents["mn2"].events() if isinstance(e, Reloaded) and e.t_ns > t_rekey]
            # Other pairs keep their bindings through the rekey.
            assert agents.cn_binding("cn1", "mn2") is not None
            assert agents.cn_binding("cn1", "mn2")["careof"] == before["mn2"]["careof"]

            # The next binding of mn1 uses the new Kbm.
            start = lab.location("mn1")
            to = "ar2" if start == plan.segment("ar1").name else "ar1"
            lab.move("mn1", to)
            coa = plan.expected_coa("mn1", plan.segment(to).subnet)
            agents.wait(lambda: (b := agents.cn_binding("cn1", "mn1")) and b["careof"] == coa and
                        agents.mn_bound("mn1") == coa, 10, "mn1's binding under the new key")
            seq_now = agents.cn_binding("cn1", "mn1")["seq"]
            sent_after = agents["cn1"].ctl("probe_stop")["sent"]
            assert sent_after > sent_before  # probes flowed through the rekey

            # A BU under the old Kbm (valid in every other respect) is refused now.
            careof = ipaddress.IPv6Address(coa).packed
            home = ipaddress.IPv6Address(plan.home_address("mn1")).packed
            cn = ipaddress.IPv6Address(cn_addr).packed
            kbm = binding_management_key(home_keygen_token(old.kcn, home, old.home_nonce),
                                         careof_keygen_token(old.kcn, careof, old.careof_nonce))
            bu = BindingUpdate((seq_now + 5) % 65536, 100, ack=True)
            packet = build_packet(careof, cn, IPPROTO_MH, seal_bad(bu, kbm, careof, cn), home_address=home)
            t_inject = time.monotonic_ns()
            done = lab.run("mn1", [sys.executable, "-m", "testbed.lab.inject", packet.hex()], tag="old-kbm-bu")
            assert done.returncode == 0, done.stderr

            def refused():
                return [e for e in agents["cn1"].events() if e.t_ns > t_inject and isinstance(e, Drop)
                        and "authenticator mismatch" in e.reason]

            agents.wait(refused, 5, "the CN's refusal of the BU under the old Kbm")
            assert agents.cn_binding("cn1", "mn1")["seq"] == seq_now
            assert agents.cn_binding("cn1", "mn2") is not None
            assert not [e for e in agents["cn1"].events() if isinstance(e, (BindingDeleted, BindingExpired))]
        cap.stop()
        # On the wire: mn1's BUs after the rekey verify with the new data, not with the old.
        new_ring, old_ring = KeyRing([new]), KeyRing([old])
        frames = list(read_frames(str(cap.path)))
        home_s = plan.home_address("mn1")
        new_ok = [r for r in verify_frames(frames, new_ring) if r.mh_type == "BU" and r.home_address == home_s
                  and r.auth == VALID]
        old_ok = [r for r in verify_frames(frames, old_ring) if r.mh_type == "BU" and r.home_address == home_s
                  and r.auth == VALID]
        assert new_ok and old_ok and {r.frame for r in new_ok}.isdisjoint({r.frame for r in old_ok})
        assert max(r.frame for r in old_ok) < min(r.frame for r in new_ok) or \
            any(r.seq == (seq_now + 5) % 65536 for r in old_ok)


# ---------------------------------------------------------------- SSH


def test_push_over_ssh_gives_what_the_namespace_push_gives(tmp_path):
    """sshd (Debian's) in the MN, CN and HA nodes standing in for real machines: the same
    playbooks over SSH (generated host and client keys, the client inside the lab) install the
    same files and modes; a namespace push of the same keys then changes nothing; the agents
    bind with them."""
    store = tmp_path / "keys"
    with Lab("handover", run_dir=tmp_path / "run") as lab, SshNodes(lab, ["mn", "cn", "ha"]) as ssh:
        keys = AnsibleKeys(store=store, reach=ssh.reach())
        cap = lab.capture("mn", lab.addresses.mobile("mn").intf)
        with LabAgents(lab, "precomputed", keys=keys) as agents:
            agents.wait(lambda: agents.mn_bound("mn"), 15, "the binding")
            assert agents.cn_binding("cn")["mechanism"] == "precomputed"
            over_ssh = {node: key_dir_listing(lab, node) for node in ("mn", "cn", "ha", "att")}
            assert set(over_ssh["mn"]) == {"agent.yaml", "mn-ha-mn.yaml", "preconfigured-cn.yaml"}
            assert set(over_ssh["cn"]) == {"agent.yaml", "preconfigured-mn.yaml"}
            assert set(over_ssh["ha"]) == {"agent.yaml", "mn-ha-mn.yaml"}
            assert over_ssh["att"] == {}
            assert all(mode == "600" and owner == "root" for listing in over_ssh.values()
                       for mode, owner, _ in listing.values())
            # The SSH sessions really carried it: sshd logged the controller's key.
            log = (lab.run_dir / "logs" / "cn-sshd.log").read_text()
            assert "Accepted publickey for root" in log
            # The namespace path with the same keys and agent settings: nothing to change.
            configs = {node: _config_of(lab, node) for node in ("mn", "cn", "ha")}
            keyset, _ = load_store(store, keys.inventory.peers(), generate_missing=False)
            result = push_keys(lab_inventory(nodes_of_lab(lab), pairs=[("mn", "cn")], agents=configs), keyset)
            assert result.ok and result.changed == 0, result.stats
            assert {node: key_dir_listing(lab, node) for node in over_ssh} == over_ssh
            # The ordinary SSH inventory file and the CLI agree that the nodes hold the keys.
            inventory = ssh.write_inventory(tmp_path / "hosts.yml", pairs=[("mn", "cn")])
            check = run_testbed("keys", "check", "--inventory", str(inventory), "--keys", str(store))
            assert check.returncode == 0 and "every node holds these keys" in check.stdout, check.stdout + check.stderr
        cap.stop()
        assert not mh_types(cap.path) & {"HoTI", "CoTI"}


def _config_of(lab, node: str) -> dict:
    import yaml

    done = lab.run(node, ["cat", f"{KEY_DIR}/agent.yaml"], tag="cat-config")
    config = yaml.safe_load(done.stdout)
    config.pop("preconfigured", None)
    config.pop("mn_ha_keys", None)
    return config
