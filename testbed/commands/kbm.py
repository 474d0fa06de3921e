"""``testbed kbm``: the RFC 6275 tokens and Kbm that RFC 4449 preconfigured data gives for one care-of address.

    testbed kbm --keys FILE --coa ADDR [--json]

Prints the home keygen token, the care-of keygen token, Kbm and the de-registration Kbm
(derived values, for comparing with another implementation or a capture). Kcn and the
nonces are never printed.
"""

from __future__ import annotations

import ipaddress
import json

from testbed.errors import ConfigError
from testbed.mip6 import keys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "kbm",
        help="show the keygen tokens and Kbm of preconfigured data for a care-of address",
        description="Derive, as RFC 6275 5.2.5 does from RFC 4449 preconfigured data, the home "
        "keygen token, the care-of keygen token for --coa, Kbm = SHA1(home token | care-of token) "
        "and the de-registration Kbm = SHA1(home token). Kcn and the nonces are not shown. "
        "Exit 2 on a bad keys file or address.",
    )
    p.add_argument("--keys", metavar="FILE", required=True, help="preconfigured data (YAML, mode 0600)")
    p.add_argument("--coa", metavar="ADDR", required=True, help="the care-of address")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
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
    data = keys.load_preconfigured(args.keys)
    derived = derive(data, careof)
    values = {
        "keys": data.source,
        "key_id": data.key_id,
        "home_address": str(derived.home_address),
        "correspondent": str(derived.correspondent),
        "careof_address": str(derived.careof_address),
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
        print(f"{label:<{width}}  {values[key]}")
    if careof == data.home_address:
        print("(care-of address = home address: a BU from here is a de-registration, authenticated with Kbm (dereg))")
    return 0


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
