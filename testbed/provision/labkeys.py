"""The lab agents' keys through Ansible: a key installer for ``testbed.lab.agents.LabAgents``.

    keys = AnsibleKeys()
    with LabAgents(lab, "precomputed", keys=keys) as agents:   # keys made here, pushed with keys.yml
        ...
        keys.rekey([("mn", "cn")])                              # rekey.yml; the agents reload

Keys are made on the controller (CSPRNG, or read from a key store), checked as a whole, and
pushed into each node's private key directory with the agent configurations naming them
(``/etc/mip6/agent.yaml`` in the node). ``reach`` (node -> connection variables) makes Ansible
reach nodes another way than through their namespaces (``SshNodes.reach()``: over SSH).
``pushes`` keeps every run's result (its ``seconds`` is what the push cost).
"""

from __future__ import annotations

from pathlib import Path

from testbed.lab.agents import AgentKeys
from testbed.provision.api import install_rekeyed, push_keys
from testbed.provision.inventory import Inventory, lab_inventory, nodes_of_lab
from testbed.provision.keyset import KeySet, Pair, generate_keyset, load_store, rekeyed, save_store, store_paths
from testbed.provision.runner import PlayResult


class AnsibleKeys:
    def __init__(self, *, store: Path | None = None, reach: dict[str, dict] | None = None,
                 record: Path | None = None, progress: bool | None = False) -> None:
        self.store = store
        self.reach = reach
        self.record = record
        self.progress = progress
        self.inventory: Inventory | None = None
        self.keyset: KeySet | None = None
        self.pushes: list[PlayResult] = []

    def _record(self, what: str) -> Path | None:
        return None if self.record is None else self.record / f"{len(self.pushes) + 1:02d}-{what}"

    def install(self, lab, configs: dict[str, dict], pairs: list[tuple[str, str]]) -> AgentKeys:
        # Every node is in the inventory; only the MN, CN and HA nodes get files (the attacker
        # and the routers nothing).
        self.inventory = lab_inventory(nodes_of_lab(lab), pairs=list(pairs), agents=configs, reach=self.reach)
        peers = self.inventory.peers()
        if self.store is not None:
            self.keyset, missing = load_store(self.store, peers, generate_missing=True)
            save_store(self.store, self.keyset, peers, only=missing)
        else:
            self.keyset = generate_keyset(peers, keep=self.keyset)
            self.keyset.check(peers)
        # The agents start after this: nothing to reload yet.
        self.pushes.append(push_keys(self.inventory, self.keyset, reload=False, record=self._record("keys"),
                                     progress=self.progress))
        key_dirs = {node: self.inventory.key_dir(node) for node in configs}
        return AgentKeys({node: f"{key_dirs[node]}/agent.yaml" for node in configs},
                         list(self.keyset.preconfigured.values()), list(self.keyset.mn_ha.values()))

    def push_again(self) -> PlayResult:
        """The same keys pushed once more (nothing should change)."""
        assert self.inventory is not None and self.keyset is not None
        result = push_keys(self.inventory, self.keyset, record=self._record("keys"), progress=self.progress)
        self.pushes.append(result)
        return result

    def rekey(self, pairs: list[Pair]) -> PlayResult:
        """New Kcn and nonces for ``pairs`` (kept in the store first, if there is one), pushed
        with rekey.yml; the running agents of those pairs reload."""
        assert self.inventory is not None and self.keyset is not None
        peers = self.inventory.peers()
        fresh = rekeyed(self.keyset, peers, list(pairs))
        if self.store is not None:
            _, pair_paths = store_paths(self.store, peers)
            save_store(self.store, fresh, peers, only=[pair_paths[p] for p in pairs], replace=True)
        self.keyset = fresh
        result = install_rekeyed(self.inventory, fresh, list(pairs), record=self._record("rekey"),
                                 progress=self.progress)
        self.pushes.append(result)
        return result

    def close(self) -> None:
        """Nothing stays on the controller (each run's directory is removed as it ends)."""
