"""The key's end of life at both ends, then ``testbed keys rekey`` (R13, R8): our MN, CN and HA
agents in the ``handover`` lab, their keys pushed with Ansible (``keys.yml``) from a key store.

The two durable sequence records of the pair are set to one step short of the bound (2^15
advance) while both agents are stopped: what 32,767 numbers of signalling would leave. Then,
on real moves: the MN's next BU uses the last step (the CN accepts it and reports
``rekey_required``); the MN's next one would pass the bound, so the MN reports
``rekey_required`` and sends nothing more with that key. ``testbed keys rekey --lab RUN
--keys DIR --pair mn:cn`` (Ansible, ``rekey.yml``) installs new data on both nodes and the
agents reload; after the next move the pair is bound again under the new key. The CN's link
is captured: the BUs are checked against the old and the new data (``testbed.diag.verify``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed.diag.capture import read_frames
from testbed.diag.verify import VALID, KeyRing, verify_frames
from testbed.experiments.verdicts import ERROR, FAIL, PASS, Outcome, Timer
from testbed.lab.agents import LabAgents
from testbed.lab.errors import LabError
from testbed.lab.lab import Lab
from testbed.mip6.seqno import KBM_MAX_ADVANCE
from testbed.mip6.persistence import SeqRecord
from testbed.storage.sequences import FileSequenceStore
from testbed.provision.labkeys import AnsibleKeys

NAME = "rekey-with-ansible"
REQUIREMENT = "R13, R8"
TITLE = ("both ends of a pair stop at the key's end of life (2^15 advance) and report rekey_required; after "
         "`testbed keys rekey` (Ansible) the pair binds again under the new key")
KEY_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else None


class _Failed(Exception):
    pass


def _seed(agents: LabAgents, node: str, key: str) -> dict:
    """Stop ``node``'s agent (SIGKILL), set its record of ``key`` one step short of the bound,
    start it again on that state."""
    handle = agents[node]
    os.killpg(handle.process.pid, signal.SIGKILL)
    handle.process.stop()
    with FileSequenceStore(agents.volatile / f"{node}-state" / "sequence") as store:
        record = store.get(key)
        if record is None:
            raise _Failed(f"{node}: no sequence record {key} to advance")
        store.put(key, SeqRecord(record.last, KBM_MAX_ADVANCE - 1))
    agents.restart(node, kill=False)
    return {"node": node, "last": record.last, "advance_was": record.advance, "advance_set": KBM_MAX_ADVANCE - 1}


def _events(agents: LabAgents, node: str, kind: str, since: int) -> list[dict]:
    return [e.as_dict() for e in agents[node].events() if e.NAME == kind and e.t_ns >= since]


def run_rekey_scenario(out: Path) -> Outcome:
    timer = Timer()
    evidence: dict = {"packets": [], "events": []}
    store = Path(tempfile.mkdtemp(prefix="mip6-rekey-keys-", dir=KEY_ROOT))  # secrets: never in the results
    try:
        with Lab("handover", run_dir=out / "lab-rekey") as lab:
            plan = lab.addresses
            cn_if = next(iter(plan.nodes["cn"].interfaces))
            capture = lab.capture("cn", cn_if)
            keys = AnsibleKeys(store=store)
            try:
                with LabAgents(lab, "precomputed", keys=keys) as agents:
                    detail = _run(lab, plan, agents, keys, store, evidence)
            finally:
                capture.stop()
            old, new = evidence.pop("_old"), evidence.pop("_new")
            frames = list(read_frames(str(capture.path)))
            home = plan.home_address("mn")
            for label, data in (("old", old), ("new", new)):
                ok = [r for r in verify_frames(frames, KeyRing([data]))
                      if r.mh_type in ("BU", "BA") and r.home_address == home and r.auth == VALID]
                evidence[f"messages_valid_under_{label}_key"] = len(ok)
                evidence["packets"] += [f"{label} key: frame {r.frame} {r.mh_type} seq {r.seq} authentic"
                                        for r in ok[-4:]]
            if not evidence["messages_valid_under_new_key"]:
                raise _Failed("no BU or BA on the CN's link authenticates under the new key")
        verdict = PASS
    except _Failed as exc:
        verdict, detail = FAIL, str(exc)
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        verdict, detail = ERROR, f"the scenario could not run: {exc}"
    finally:
        shutil.rmtree(store, ignore_errors=True)
    evidence["detail"] = detail
    return Outcome(NAME, REQUIREMENT, verdict, evidence, group="security", title=TITLE, seconds=timer.seconds)


def _move(lab, plan, agents: LabAgents) -> tuple[int, str]:
    here = lab.location("mn")
    to = "ar2" if here == plan.segment("ar1").name else "ar1"
    t = lab.move("mn", to)
    return t, plan.expected_coa("mn", plan.segment(to).subnet)


def _run(lab, plan, agents: LabAgents, keys: AnsibleKeys, store: Path, evidence: dict) -> str:
    agents.wait(lambda: agents.mn_bound("mn"), 30, "the MN's first bindings")
    old = keys.keyset.preconfigured[("mn", "cn")]
    cn_addr = plan.correspondents["cn"]
    home = plan.home_address("mn")
    cn_key = f"cn/{old.home_address.exploded.replace(':', '')}/{old.key_id}"
    mn_key = f"mn/cn/{old.correspondent.packed.hex()}/{old.key_id}"
    t0 = time.monotonic_ns()
    evidence["seeded"] = [_seed(agents, "cn", cn_key), _seed(agents, "mn", mn_key)]
    # The MN's next BU to the CN (it registers again after its restart, or after a move)
    # takes the last step: the CN accepts it and reports that the key is used up.
    try:
        agents.wait(lambda: _events(agents, "cn", "rekey_required", t0), 5, "the CN's rekey_required")
        coa1 = "its re-registration after the restart"
    except LabError:
        _, coa1 = _move(lab, plan, agents)
        coa1 = f"after a move to {coa1}"
        agents.wait(lambda: _events(agents, "cn", "rekey_required", t0), 15, "the CN's rekey_required")
    evidence["events"] += _events(agents, "cn", "rekey_required", t0)[:1]
    # The next BU would pass the bound: the MN reports it and sends nothing more with the key.
    t2, coa2 = _move(lab, plan, agents)
    agents.wait(lambda: _events(agents, "mn", "rekey_required", t0), 15, "the MN's rekey_required")
    evidence["events"] += _events(agents, "mn", "rekey_required", t0)[:1]
    agents.wait(lambda: any(e["state"] == "rekey" for e in agents["mn"].ctl("bul")["entries"]), 10,
                "the MN's entry in state rekey")
    binding = agents.cn_binding("cn", "mn")
    if binding is not None and binding["careof"] == coa2:
        raise _Failed(f"the CN bound {home} at {coa2} with the used-up key")
    # the rekey, through Ansible
    t3 = time.monotonic_ns()
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "keys", "rekey", "--lab", str(lab.run_dir),
                           "--keys", str(store), "--pair", "mn:cn", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise _Failed(f"testbed keys rekey exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")
    result = json.loads(done.stdout)
    evidence["rekey"] = {"hosts": result.get("hosts"), "rekeyed": result.get("rekeyed")}
    for node in ("cn", "mn"):
        agents.wait(lambda node=node: _events(agents, node, "reloaded", t3), 15, f"the {node} agent's reload")
    from testbed.provision.keyset import load_store

    keyset, _ = load_store(store, keys.inventory.peers(), generate_missing=False)
    new = keyset.preconfigured[("mn", "cn")]
    if new.key_id == old.key_id:
        raise _Failed("testbed keys rekey left the pair's key as it was")
    # move 3: bound again under the new key
    _, coa3 = _move(lab, plan, agents)
    agents.wait(lambda: agents.mn_bound("mn") == coa3, 20, "the MN bound under the new key")
    agents.wait(lambda: (b := agents.cn_binding("cn", "mn")) and b["careof"] == coa3, 10, "the CN's binding")
    evidence["_old"], evidence["_new"] = old, new
    return (f"records set to advance {KBM_MAX_ADVANCE - 1}; the MN's next BU ({coa1}) took the last step, the "
            f"CN accepted it and reported rekey_required; move to {coa2}: the MN reported rekey_required, its entry for {cn_addr} went to state rekey, the CN did "
            "not bind the new care-of address; "
            f"testbed keys rekey (Ansible) key {old.key_id} -> {new.key_id}, both agents reloaded; move to {coa3}: "
            "bound again")
