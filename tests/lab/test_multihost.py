"""The multi-host path in CI (issue 13): the handover experiment driven through an SSH inventory
(``testbed experiment handover --inventory``), against sshd in the nodes of a lab standing in
for machines. The MN "machine" has one NIC on each access network and a management NIC
(testbed/lab/multinic.py); the experiment reaches every node only over SSH and moves the MN by
taking one NIC down and the other up. It must write the same results layout as the Mininet path."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import yaml

from testbed.experiments.handover import METRIC_FIELDS
from testbed.lab.lab import Lab
from testbed.lab.multinic import dual_home
from testbed.provision.sshnodes import SshNodes

pytestmark = pytest.mark.lab

RESULT_FILES = {"spec.json", "metrics.csv", "metrics.json", "summary.json", "host.json", "handover.png", "report.md"}


def _inventory(lab, ssh: SshNodes, dual, path):
    ssh.write_inventory(path, pairs=[("mn", "cn")])
    doc = yaml.safe_load(path.read_text())
    hosts = doc["all"]["hosts"]
    hosts["mn"]["mip6_access"] = dual.access
    hosts["cn"]["mip6_capture"] = next(iter(lab.addresses.nodes["cn"].interfaces))
    doc["all"].setdefault("vars", {})["mip6_home_prefix"] = lab.addresses.home_prefix
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_handover_experiment_over_ssh_on_a_two_nic_mobile_node(tmp_path):
    out = tmp_path / "results"
    with Lab("handover", run_dir=tmp_path / "run") as lab:
        dual = dual_home(lab)
        with SshNodes(lab, ["mn", "cn", "ha"], addresses={"mn": dual.management_address}) as ssh:
            inventory = _inventory(lab, ssh, dual, tmp_path / "hosts.yml")
            done = subprocess.run([sys.executable, "-m", "testbed.cli", "experiment", "handover", "--inventory",
                                   str(inventory), "--mechanism", "precomputed", "--moves", "2", "--out", str(out),
                                   "--json"], capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            # Every node was reached over SSH (sshd logged the controller's key), the MN through
            # its management NIC; at the end the MN is back on AR1: its first NIC up, the second down.
            for node in ("mn", "cn", "ha"):
                assert "Accepted publickey for root" in (lab.run_dir / "logs" / f"{node}-sshd.log").read_text()
            links = lab.run("mn", ["ip", "-o", "link", "show"], tag="links").stdout
            nic1, nic2 = dual.access["ar1"], dual.access["ar2"]
            assert [line for line in links.splitlines() if f" {nic1}:" in line or f" {nic1}@" in line][0].count(
                "state UP") == 1
            assert "state DOWN" in [line for line in links.splitlines() if f" {nic2}@" in line][0]
    summary = json.loads(done.stdout)
    assert summary["backend"] == "hosts" and summary["ok"]
    m = summary["mechanisms"]["precomputed"]
    assert m["moves"] == 2 and m["bound"] and m["error"] is None
    assert m["pauses_judged"]  # the nodes are namespaces of this machine: its pause monitor applies
    assert m["mh_types"].get("BU", 0) >= 2 and m["bad_verdicts"].get("BU:valid", 0) >= 2  # checked with the run's keys
    # The same results layout as the Mininet path
    assert RESULT_FILES <= {p.name for p in out.iterdir()}
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == METRIC_FIELDS
    assert [r["to"] for r in rows] == ["ar2", "ar1"] and all(float(r["coa_to_ba_ms"]) > 0 for r in rows)
    # each move's care-of address is on the network of the NIC brought up
    assert rows[0]["careof"].startswith("2001:db8:a:2:") and rows[1]["careof"].startswith("2001:db8:a:1:")
    events = out / "precomputed" / "events" / "precomputed"  # as the lab's agents write them
    assert {p.name for p in events.iterdir()} == {"mn.jsonl", "cn.jsonl", "ha.jsonl"}
    assert (out / "precomputed" / "logs").is_dir() and len(list((out / "precomputed").glob("*.pcap"))) == 2
    report = (out / "report.md").read_text()
    assert "precomputed Kbm (RFC 4449)" in report
    # no key material anywhere in the results
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".csv", ".log", ".txt", ""):
            assert "kcn" not in path.read_text(errors="replace").lower(), path
