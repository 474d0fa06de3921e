"""``testbed kbm``: the RFC 6275 tokens and Kbm that RFC 4449 preconfigured data gives for one care-of address.

    testbed kbm --keys FILE --coa ADDR [--json] [--show-secrets]

Without ``--show-secrets`` it prints what names the derivation (key id, addresses) and
withholds the derived values: with RFC 4449 the home keygen token and the de-registration
Kbm never change for a pair, so whoever reads them can forge de-registrations until the key
is replaced. With ``--show-secrets`` it prints the home keygen token, the care-of keygen
token, Kbm and the de-registration Kbm (for comparing with another implementation or a
capture). Kcn and the nonces are never printed.
"""

from __future__ import annotations

import ipaddress
import json

from testbed.errors import ConfigError
from testbed.storage.keyfiles import load_preconfigured


def add_parser(sub) -> None:
    p = sub.add_parser(
        "kbm",
        help="show the keygen tokens and Kbm of preconfigured data for a care-of address",
        description="Derive, as RFC 6275 5.2.5 does from RFC 4449 preconfigured data, the home "
        "keygen token, the care-of keygen token for --coa, Kbm = SHA1(home token | care-of token) "
        "and the de-registration Kbm = SHA1(home token). These derived values are secrets (the "
        "home token and the de-registration Kbm never change for a pair: whoever reads them can "
        "forge de-registrations until the key is replaced), so they are printed only with "
        "--show-secrets; without it the output names the key and the addresses only. Kcn and "
        "the nonces are never shown. Exit 2 on a bad keys file or address.",
    )
    p.add_argument("--keys", metavar="FILE", required=True, help="preconfigured data (YAML, mode 0600)")
    p.add_argument("--coa", metavar="ADDR", required=True, help="the care-of address")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--show-secrets", action="store_true",
                   help="print the derived secrets (home and care-of keygen tokens, Kbm, de-registration Kbm); "
                   "without it they are withheld")
    p.set_defaults(func=run)


def parse_careof(text: str) -> ipaddress.IPv6Address:
    """A care-of address argument, or ConfigError naming it and what is wrong."""
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        raise ConfigError(f"--coa {text!r}: not an IPv6 address") from None
    if addr.scope_id is not None:
        raise ConfigError(f"--coa {text!r}: has a zone index; give the bare address")
    if addr.is_multicast or addr.is_unspecified:
        raise ConfigError(f"--coa {addr}: a care-of address must be a unicast address")
    return addr


def run(args) -> int:
    from testbed.diag.keymaterial import derive

    careof = parse_careof(args.coa)
    data = load_preconfigured(args.keys)
    derived = derive(data, careof)
    values = {
        "keys": data.source,
        "key_id": data.key_id,
        "home_address": str(derived.home_address),
        "correspondent": str(derived.correspondent),
        "careof_address": str(derived.careof_address),
    }
    if args.show_secrets:
        values |= {
            "home_token": derived.home_token.hex(),
            "careof_token": derived.careof_token.hex(),
            "kbm": derived.kbm.hex(),
            "kbm_dereg": derived.kbm_dereg.hex(),
        }
    if args.json:
        print(json.dumps(values))
        return 0
    width = max(len(k) for k in _LABELS.values())
    for key, label in _LABELS.items():
        print(f"{label:<{width}}  {values.get(key, _WITHHELD)}")
    if careof == data.home_address:
        print("(care-of address = home address: a BU from here is a de-registration, authenticated with Kbm (dereg))")
    return 0


_WITHHELD = "(withheld: --show-secrets prints it)"
_LABELS = {
    "keys": "keys",
    "key_id": "key id",
    "home_address": "home address",
    "correspondent": "correspondent",
    "careof_address": "care-of address",
    "home_token": "home keygen token",
    "careof_token": "care-of keygen token",
    "kbm": "Kbm",
    "kbm_dereg": "Kbm (dereg)",
}
