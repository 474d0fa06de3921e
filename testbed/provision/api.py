"""Pushing, checking and rotating keys: the one API of the lab, the experiments, the
security scenarios and ``testbed keys``.

    inventory = lab_inventory(nodes_of_lab(lab))            # or load_inventory("hosts.yml")
    keyset = generate_keyset(inventory.peers())              # or load_store(...)
    result = push_keys(inventory, keyset)                    # keys.yml; result.changed == 0 the 2nd time
    keyset, result = rekey(inventory, keyset, [("mn", "cn")])  # rekey.yml: new Kcn and nonces, agents reload

The whole key set is checked (``KeySet.check``: R1, R3, R10) before any playbook runs; a
failed check raises ConfigError and no node is touched. A failed run raises ProvisionError.
On each node the files are named after the peer (``preconfigured-<peer>.yaml``,
``mn-ha-<mn>.yaml``) in its key directory.
"""

from __future__ import annotations

from pathlib import Path

from testbed.mip6 import keys as pre
from testbed.mip6.mnha import dump_mn_ha
from testbed.provision.inventory import Inventory
from testbed.provision.keyset import KeySet, Pair, rekeyed
from testbed.provision.runner import PlayResult, ProvisionError, run_playbook


def pre_id(pair: Pair) -> str:
    return f"pre/{pair[0]}/{pair[1]}"


def mn_ha_id(mn: str) -> str:
    return f"mnha/{mn}"


def key_plan(inventory: Inventory, agents: dict[str, dict] | None = None) -> dict[str, dict]:
    """Per host the key files it gets (ids and names, no secrets) and, if given, its agent settings."""
    plan: dict[str, dict] = {h: {"files": []} for h in (*inventory.mobiles, *inventory.correspondents,
                                                         *inventory.home_agents)}
    for mn in inventory.mobiles:
        entry = {"id": mn_ha_id(mn), "name": f"mn-ha-{mn}.yaml", "kind": "mn_ha"}
        plan[mn]["files"].append(entry)
        plan[inventory.home_agent_of(mn)]["files"].append(entry)
    for mn, cn in inventory.pairs:
        plan[mn]["files"].append({"id": pre_id((mn, cn)), "name": f"preconfigured-{cn}.yaml", "kind": "preconfigured"})
        plan[cn]["files"].append({"id": pre_id((mn, cn)), "name": f"preconfigured-{mn}.yaml", "kind": "preconfigured"})
    for host, settings in (agents or {}).items():
        if host in plan:
            plan[host]["agent"] = settings
    return plan


def secret_texts(keyset: KeySet, *, pairs: list[Pair] | None = None, mn_ha: bool = True) -> dict[str, str]:
    """id -> file text, for the tmpfs secrets file only."""
    texts = {mn_ha_id(mn): dump_mn_ha(sa) for mn, sa in keyset.mn_ha.items()} if mn_ha else {}
    texts.update({pre_id(p): pre.dump(d) for p, d in keyset.preconfigured.items() if pairs is None or p in pairs})
    return texts


def push_keys(inventory: Inventory, keyset: KeySet, *, agents: dict[str, dict] | None = None,
              check: bool = False, reload: bool = True, record: Path | None = None,
              progress: bool | None = None) -> PlayResult:
    """Check the whole key set, then install it with keys.yml (``check``: Ansible's check mode,
    nothing changes; the result says what would). ``reload``: running agents whose files
    changed reload them (False: no agent runs yet, skip the check)."""
    keyset.check(inventory.peers())
    result = run_playbook("keys.yml", inventory.source,
                          extravars={"mip6_plan": key_plan(inventory, agents), "mip6_reload": reload},
                          secrets=secret_texts(keyset), check=check, record=record, progress=progress)
    if not result.ok:
        raise ProvisionError(result.summary())
    return result


def rekey(inventory: Inventory, keyset: KeySet, pairs: list[Pair], *, record: Path | None = None,
          progress: bool | None = None) -> tuple[KeySet, PlayResult]:
    """New Kcn and nonces for ``pairs`` (checked with all other keys), installed with rekey.yml;
    the running agents of those pairs reload. Returns the new key set and the run."""
    fresh = rekeyed(keyset, inventory.peers(), pairs)
    result = install_rekeyed(inventory, fresh, pairs, record=record, progress=progress)
    return fresh, result


def install_rekeyed(inventory: Inventory, keyset: KeySet, pairs: list[Pair], *, record: Path | None = None,
                    progress: bool | None = None) -> PlayResult:
    keyset.check(inventory.peers())
    result = run_playbook("rekey.yml", inventory.source,
                          extravars={"mip6_plan": key_plan(inventory), "mip6_only": [pre_id(p) for p in pairs]},
                          secrets=secret_texts(keyset, pairs=pairs, mn_ha=False), record=record, progress=progress,
                          limit=",".join(sorted({host for pair in pairs for host in pair})))
    if not result.ok:
        raise ProvisionError(result.summary())
    return result
