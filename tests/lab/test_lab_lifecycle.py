"""Life cycle of real labs: removal after exceptions and Ctrl-C, results kept, captures,
two labs in one process, and ``testbed lab clean`` after a crashed run.

What a run leaves behind is asserted, not assumed: root-namespace interfaces with the run's
tag, processes recorded in its state file (pid + start time), node shells, any process in
the run's node namespaces, its state file, its volatile directory and (when temporary) its
run directory. A run directory given by the caller is a result: it stays, with lab.json,
configs, logs and pcaps, and only its ``.lab`` volatile directory goes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.errors import ConfigError
from testbed.lab import Lab
from testbed.lab.cleanup import processes_in_netns, tagged_root_links
from testbed.lab.state import ProcessRecord, RunState, ticks_since_boot

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunTrace:
    run_id: str
    state_path: Path
    run_dir: Path
    temporary: bool
    records: list[ProcessRecord]
    netns_inodes: set[int]
    taken: int = 0  # ticks_since_boot() when traced: a process started later is not the run's



def trace(lab: Lab) -> RunTrace:
    state = RunState.load(lab.state.path)
    return RunTrace(lab.run_id, lab.state.path, lab.run_dir, state.run_dir_is_temporary,
                    state.processes + state.shells, set(lab._netns_inodes), ticks_since_boot())


def assert_gone(t: RunTrace) -> None:
    assert tagged_root_links({t.run_id}) == [], "tagged interfaces left"
    alive = [r for r in t.records if r.alive()]
    assert alive == [], f"processes left: {alive}"
    # Once gone, a namespace's inode number may be another run's (other labs run meanwhile):
    # a process in it that started after the trace is not ours.
    assert processes_in_netns(t.netns_inodes, started_before=t.taken or None) == [], \
        "processes left in node namespaces"
    assert not t.state_path.exists(), "state file left"
    assert not (t.run_dir / ".lab").exists(), "volatile directory left"
    if t.temporary:
        assert not t.run_dir.exists(), "temporary run directory left"


def _busy_lab(lab: Lab) -> None:
    """Give the lab something of everything: an extra process, a capture, a move."""
    lab.popen("cn", ["sleep", "600"], tag="sleeper")
    lab.capture("mn", "mn-eth0")
    lab.move("mn", to="ar2")


def test_exception_mid_run_leaves_nothing():
    with pytest.raises(RuntimeError, match="boom"), Lab("handover") as lab:
        _busy_lab(lab)
        t = trace(lab)
        assert len(t.records) > 20 and tagged_root_links({t.run_id})
        raise RuntimeError("boom")
    assert_gone(t)


def test_ctrl_c_mid_run_leaves_nothing():
    with pytest.raises(KeyboardInterrupt), Lab("handover") as lab:
        _busy_lab(lab)
        t = trace(lab)
        raise KeyboardInterrupt
    assert_gone(t)


def test_failure_during_bring_up_leaves_nothing(monkeypatch):
    seen: list[RunTrace] = []

    def failing_radvd(self):
        seen.append(trace(self))
        raise RuntimeError("radvd exploded")

    monkeypatch.setattr(Lab, "_start_radvd", failing_radvd)
    with pytest.raises(RuntimeError, match="radvd exploded"), Lab("handover"):
        pytest.fail("the with body must not run")
    assert seen and tagged_root_links({seen[0].run_id}) == []
    assert_gone(seen[0])


def test_results_stay_in_a_given_run_dir_and_are_not_overwritten(tmp_path):
    from scapy.all import ICMPv6EchoRequest, ICMPv6ND_RA, rdpcap

    run_dir = tmp_path / "run"
    with Lab("handover", run_dir=run_dir) as lab:
        cap = lab.capture("mn", "mn-eth0")
        done = lab.run("mn", ["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-w", "5",
                              lab.addresses.cn_address])
        assert done.returncode == 0, done.stdout + done.stderr
        path = cap.stop()
        t = trace(lab)
    assert_gone(t)
    packets = rdpcap(str(path))
    assert any(p.haslayer(ICMPv6EchoRequest) for p in packets)
    assert any(p.haslayer(ICMPv6ND_RA) for p in packets)
    assert path == run_dir / "mn-mn-eth0.pcap"
    data = json.loads((run_dir / "lab.json").read_text())
    assert data["addresses"]["mobiles"]["mn"]["home_address"] == "2001:db8:1::100"
    assert data["delay_backend"] in ("netem", "delayline")
    assert "AdvHomeAgentFlag on;" in (run_dir / "conf" / "radvd-ha.conf").read_text()
    with pytest.raises(ConfigError, match="already holds a lab run"), Lab("handover", run_dir=run_dir):
        pass
    assert (run_dir / "lab.json").read_text() == json.dumps(data, indent=1, default=str)


def test_two_labs_one_after_another_in_one_process():
    run_ids = []
    for topology, params in (("handover", {}), ("handover", {"core_ha_delay": "5ms"})):
        with Lab(topology, **params) as lab:
            run_ids.append(lab.run_id)
            done = lab.run("cn", ["ping", "-6", "-n", "-c", "1", "-i", "0.2", "-w", "5",
                                  lab.addresses.home_agent])
            assert done.returncode == 0, done.stdout + done.stderr
            t = trace(lab)
        assert_gone(t)
    assert run_ids[0] != run_ids[1]


CRASHING_RUN = """
import sys
from testbed.lab import Lab
lab = Lab("handover", run_dir=sys.argv[1])
lab.start()
lab.popen("cn", ["sleep", "600"], tag="sleeper")
lab.capture("ha", "ha-eth0")
print(lab.run_id, lab.state.path, flush=True)
sys.stdin.read()  # until the test kills us
"""


def test_clean_removes_a_crashed_run_and_nothing_else(tmp_path):
    subprocess.run(["ip", "link", "add", "x6c0de", "type", "bridge"], check=True)
    unclaimed = "m6fffftst"  # looks like ours, but no state file claims run ffff
    subprocess.run(["ip", "link", "add", unclaimed, "type", "bridge"], check=True)
    try:
        with Lab("handover") as live:  # a live run: clean must leave it alone
            child = subprocess.Popen([sys.executable, "-c", CRASHING_RUN, str(tmp_path / "crashed")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=REPO)
            try:
                line = child.stdout.readline().split()
                assert len(line) == 2, "the crashing run did not come up"
                run_id, state_path = line[0], Path(line[1])
                state = RunState.load(state_path)
                netns = {os.stat(f"/proc/{s.pid}/ns/net").st_ino for s in state.shells
                         if s.alive() and os.stat(f"/proc/{s.pid}/ns/net").st_ino
                         != os.stat("/proc/self/ns/net").st_ino}
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait()
                child.stdout.close()
                child.stdin.close()
            assert tagged_root_links({run_id}), "the crashed run left nothing to clean?"
            assert any(r.alive() for r in state.processes)
            done = subprocess.run([sys.executable, "-m", "testbed.cli", "lab", "clean"],
                                  capture_output=True, text=True, cwd=REPO, timeout=120,
                                  check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"run {run_id}:" in done.stdout
            assert f"run {live.run_id}: still running" in done.stdout
            assert unclaimed in done.stdout  # reported, left alone
            # the crashed run is gone ...
            assert_gone(RunTrace(run_id, state_path, tmp_path / "crashed", False,
                                 state.processes + state.shells, netns, ticks_since_boot()))
            assert (tmp_path / "crashed" / "ha-ha-eth0.pcap").exists()  # a result: kept
            # ... the live run, the foreign bridge and the unclaimed one are untouched
            assert tagged_root_links({live.run_id}) and live.state.path.exists()
            ok = live.run("mn", ["ping", "-6", "-n", "-c", "1", "-i", "0.2", "-w", "5",
                                 live.addresses.cn_address])
            assert ok.returncode == 0
            links = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                                   check=True).stdout
            names = {link["ifname"] for link in json.loads(links)}
            assert {"x6c0de", unclaimed} <= names
            t = trace(live)
        assert_gone(t)
    finally:
        subprocess.run(["ip", "link", "del", "x6c0de"], check=False)
        subprocess.run(["ip", "link", "del", unclaimed], check=False)


def test_rejected_radvd_intervals_are_a_config_error_and_leave_nothing():
    lab = Lab("handover", ra_min_interval="0.01", ra_max_interval="0.02")
    with pytest.raises(ConfigError, match=r"radvd .* rejects MinRtrAdvInterval 0.01 s"):
        lab.start()
    assert not lab.state.path.exists() and not lab.run_dir.exists()
    assert tagged_root_links({lab.run_id}) == []


def test_forcing_a_missing_delay_backend_is_a_config_error():
    from testbed.lab.netem import netem_available

    if netem_available():
        pytest.skip("this kernel has netem")
    lab = Lab("handover", delay_backend="netem")
    with pytest.raises(ConfigError, match="delay_backend=netem: the kernel has no netem"):
        lab.start()
    assert not lab.state.path.exists() and not lab.run_dir.exists()


SCRATCH_OWNER = """
import sys
from pathlib import Path
from testbed.lab.scratch import owned_scratch_dir
work = owned_scratch_dir(sys.argv[1], Path("/dev/shm"))
(work / "secret").mkdir()
(work / "secret" / "keys.yml").write_text("mip6_secrets: {}")
print(work, flush=True)
sys.stdin.read()  # until the test kills us (or closes stdin)
"""


@pytest.mark.parametrize("prefix", ["mip6-ansible-", "mip6-pauses-"])  # a key push's, a pause monitor's
def test_clean_removes_the_scratch_directory_of_a_killed_owner_only(prefix):
    def owner():
        child = subprocess.Popen([sys.executable, "-c", SCRATCH_OWNER, prefix], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, cwd=REPO)
        return child, Path(child.stdout.readline().strip())

    killed, killed_dir = owner()
    running, running_dir = owner()
    try:
        killed.kill()
        killed.wait()
        assert (killed_dir / "secret" / "keys.yml").exists()
        done = subprocess.run([sys.executable, "-m", "testbed.cli", "lab", "clean"], capture_output=True,
                              text=True, cwd=REPO, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert str(killed_dir) in done.stdout
        assert not killed_dir.exists()
        assert (running_dir / "secret" / "keys.yml").exists()  # its owner still runs
    finally:
        running.communicate("")
        for child in (killed, running):
            child.stdout.close()
        for path in (killed_dir, running_dir):
            if path.parent == Path("/dev/shm") and path.name.startswith(prefix):
                shutil.rmtree(path, ignore_errors=True)
