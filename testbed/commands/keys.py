"""``testbed keys``: make, check, push and rotate the preconfigured keys with Ansible.

    testbed keys push  (--lab RUN | --inventory FILE) --keys DIR [--generate] [--pair MN:CN ...]
    testbed keys rekey (--lab RUN | --inventory FILE) --keys DIR --pair MN:CN [--pair ...]
    testbed keys check (--lab RUN | --inventory FILE) --keys DIR [--pair MN:CN ...] [--offline]

``--keys DIR`` is the key store on this machine (0700; ``DIR/<mn>/mn-ha.yaml``,
``DIR/<mn>/cn-<cn>.yaml``, each 0600 in the agents' file format); bring your own files or let
``push --generate`` make the missing ones (CSPRNG). Every key is checked (length, entropy,
no key twice, addresses matching the inventory) before any node is touched: a bad one stops
everything with one line and exit code 2. ``--lab`` takes the run directory or run id of a
lab ``testbed lab`` runs; ``--inventory`` an Ansible inventory (see
``playbooks/inventory/ssh.example.yml``). Exit codes: 0 done (check: nodes in sync), 1 a
playbook failed (check: some node would change), 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from testbed.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("keys", help="make, check, push and rotate the preconfigured keys with Ansible",
                       description="Push RFC 4449 preconfigured data and RFC 4285 MN-HA keys to the nodes "
                       "with Ansible (keys.yml, rekey.yml, through ansible-runner), after checking all of "
                       "them on this machine.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("push", "check the keys, then install them on every node (keys.yml)"),
                       ("rekey", "new Kcn and nonces for the named pairs; running agents reload (rekey.yml)"),
                       ("check", "check the keys, and whether the nodes hold them (keys.yml in check mode)")):
        a = actions.add_parser(name, help=text, description=text)
        target = a.add_mutually_exclusive_group(required=True)
        target.add_argument("--lab", metavar="RUN", help="a running lab: its run directory or run id")
        target.add_argument("--inventory", metavar="FILE", help="an Ansible inventory (groups mip6_mn, mip6_cn, mip6_ha)")
        a.add_argument("--keys", metavar="DIR", required=True, help="the key store on this machine (0700)")
        a.add_argument("--pair", action="append", metavar="MN:CN",
                       help="an MN-CN pair (repeatable); push/check: only these use preconfigured data "
                       "(default: the inventory's mip6_precomputed; with --lab every MN with every CN)")
        a.add_argument("--json", action="store_true", help="print the result as JSON")
        if name == "push":
            a.add_argument("--generate", action="store_true", help="make the keys the store does not have (CSPRNG)")
            a.add_argument("--record", metavar="DIR", help="keep the run's Ansible events and output here (no secrets)")
        if name == "rekey":
            a.add_argument("--record", metavar="DIR", help="keep the run's Ansible events and output here (no secrets)")
        if name == "check":
            a.add_argument("--offline", action="store_true", help="only check the keys; do not ask the nodes")
        a.set_defaults(func=run)


def _inventory(args):
    from testbed.provision.inventory import lab_inventory, load_inventory, nodes_of_run, parse_pairs

    pairs = parse_pairs(args.pair)
    if args.lab:
        inventory = lab_inventory(nodes_of_run(args.lab))
    else:
        inventory = load_inventory(args.inventory)
    if pairs is not None and args.action != "rekey":
        inventory = inventory.select(pairs)
    return inventory, pairs


def run(args) -> int:
    from testbed.provision.api import install_rekeyed, push_keys
    from testbed.provision.keyset import load_store, rekeyed, save_store, store_paths

    store = Path(args.keys)
    inventory, pairs = _inventory(args)
    peers = inventory.peers()
    record = Path(args.record) if getattr(args, "record", None) else None
    if args.action == "push":
        keyset, missing = load_store(store, peers, generate_missing=args.generate)
        save_store(store, keyset, peers, only=missing)
        result = push_keys(inventory, keyset, record=record)
        return _report(args, result, {"generated": [str(p) for p in missing], "keys": keyset.key_ids()})
    if args.action == "rekey":
        if not pairs:
            raise ConfigError("rekey: name the pairs with --pair MN:CN")
        keyset, _ = load_store(store, peers, generate_missing=False)
        fresh = rekeyed(keyset, peers, pairs)
        _, pair_paths = store_paths(store, peers)
        save_store(store, fresh, peers, only=[pair_paths[p] for p in pairs], replace=True)
        result = install_rekeyed(inventory, fresh, pairs, record=record)
        old, new = keyset.key_ids(), fresh.key_ids()
        return _report(args, result, {"rekeyed": {f"{mn}:{cn}": {"old": old[f"{mn}:{cn}"], "new": new[f"{mn}:{cn}"]}
                                                  for mn, cn in pairs}})
    keyset, _ = load_store(store, peers, generate_missing=False)
    if args.offline:
        data = {"ok": True, "keys": keyset.key_ids()}
        print(json.dumps(data, indent=1) if args.json else f"{store}: {len(keyset.key_ids())} pairs and "
              f"{len(keyset.mn_ha)} MN-HA keys pass the checks")
        return 0
    result = push_keys(inventory, keyset, check=True)
    code = _report(args, result, {"keys": keyset.key_ids()}, check=True)
    return code if code else (0 if result.changed == 0 else 1)


def _report(args, result, extra: dict, check: bool = False) -> int:
    data = {"ok": result.ok, "playbook": result.playbook, "check_mode": check, "seconds": round(result.seconds, 2),
            "changed": result.changed, "hosts": result.stats, **extra}
    if args.json:
        print(json.dumps(data, indent=1))
    elif check:
        print(f"{result.playbook} (check mode): "
              + ("every node holds these keys" if result.changed == 0 else
                 f"{result.changed} change{'' if result.changed == 1 else 's'} needed on "
                 + ", ".join(h for h, s in result.stats.items() if s.get('changed')))
              + f" ({result.seconds:.1f} s)")
    else:
        print(result.summary())
        for path in extra.get("generated", []):
            print(f"{path}: generated (0600)", file=sys.stderr)
        for pair, ids in extra.get("rekeyed", {}).items():
            print(f"{pair}: key {ids['old']} replaced by {ids['new']}")
    return 0
