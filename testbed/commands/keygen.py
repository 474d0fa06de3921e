"""``testbed keygen``: make or check RFC 4449 preconfigured data (R1, R3, R10).

    testbed keygen --home-address A --correspondent B [--out FILE] [--kcn-octets N]
    testbed keygen --check FILE [FILE ...] [--role mn|cn]

Without ``--out`` the YAML goes to stdout (it holds the secrets: redirect it into a 0600 file).
``--out`` never overwrites an existing file.
"""

from __future__ import annotations

import sys

from testbed.errors import ConfigError
from testbed.mip6 import keys
from testbed.storage.keyfiles import load_preconfigured, write_new


def add_parser(sub) -> None:
    p = sub.add_parser(
        "keygen",
        help="generate or check RFC 4449 preconfigured data (Kcn and nonces) for an MN-CN pair",
        description="Generate fresh RFC 4449 preconfigured data for one MN-CN pair from the OS "
        "CSPRNG (a file created with mode 0600, or YAML on stdout), or check existing files: "
        "each alone (mode, format, Kcn length and entropy) and together (R10: no Kcn shared "
        "between peers, no pair twice).",
    )
    p.add_argument("--home-address", metavar="ADDR", help="the mobile node's home address")
    p.add_argument("--correspondent", metavar="ADDR", help="the correspondent node's address")
    p.add_argument("--out", metavar="FILE", help="create FILE (mode 0600; refused if it exists) instead of printing")
    p.add_argument(
        "--kcn-octets",
        metavar="N",
        type=int,
        default=keys.KCN_DEFAULT_OCTETS,
        help=f"Kcn length in octets (default and minimum {keys.KCN_MIN_OCTETS})",
    )
    p.add_argument("--check", metavar="FILE", nargs="+", help="validate these files instead of generating")
    p.add_argument(
        "--role",
        choices=("mn", "cn"),
        help="with --check: the files are one node's peers (mn: same home address; cn: same correspondent)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    if args.check:
        return _check(args)
    if args.role:
        raise ConfigError("--role goes with --check")
    if not args.home_address or not args.correspondent:
        raise ConfigError("keygen needs --home-address and --correspondent (or --check FILE ...)")
    data = keys.generate(args.home_address, args.correspondent, kcn_len=args.kcn_octets)
    if args.out:
        written = write_new(args.out, data)
        load_preconfigured(written.source)  # what we wrote must pass the validator
        print(f"{written.source}: written (key {written.key_id})")
    else:
        text = keys.dump(data)
        keys.parse_preconfigured(text, "<generated>")
        sys.stdout.write(text)
    return 0


def _check(args) -> int:
    extra = [f for f, v in (("--home-address", args.home_address), ("--correspondent", args.correspondent),
                            ("--out", args.out)) if v]
    if extra:
        raise ConfigError(f"--check does not go with {', '.join(extra)}")
    items = [load_preconfigured(path) for path in args.check]
    if args.role:
        keys.index_peers(items, args.role)
    else:
        keys.check_distinct_pairs(items)
        keys.check_distinct_kcn(items)
    for item in items:
        print(f"{item.source}: ok")
    return 0
