"""The values RFC 6275 5.2.5 derives from RFC 4449 preconfigured data for one care-of address.

These are derived secrets: with RFC 4449 the home keygen token and the de-registration Kbm
never change for a pair, so whoever reads them can forge de-registrations until the key is
replaced. ``testbed kbm`` prints them only when asked to (``--show-secrets``), and the
``repr`` of ``DerivedKeys`` shows none of them. Kcn and the nonces never leave
``PreconfiguredData``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from testbed.mip6 import crypto
from testbed.mip6.keys import PreconfiguredData


@dataclass(frozen=True, slots=True)
class DerivedKeys:
    home_address: ipaddress.IPv6Address
    correspondent: ipaddress.IPv6Address
    careof_address: ipaddress.IPv6Address
    home_token: bytes = field(repr=False)
    careof_token: bytes = field(repr=False)
    kbm: bytes = field(repr=False)  # SHA1(home token | care-of token)
    kbm_dereg: bytes = field(repr=False)  # SHA1(home token), for lifetime 0 or care-of address == home address

    def kbm_for(self, deregistration: bool) -> bytes:
        return self.kbm_dereg if deregistration else self.kbm


def derive(data: PreconfiguredData, careof_address: ipaddress.IPv6Address | bytes) -> DerivedKeys:
    """Tokens and both Kbm variants of ``data`` for ``careof_address``."""
    coa = ipaddress.IPv6Address(careof_address)
    home_token = crypto.home_keygen_token(data.kcn, data.home_address.packed, data.home_nonce)
    careof_token = crypto.careof_keygen_token(data.kcn, coa.packed, data.careof_nonce)
    return DerivedKeys(
        data.home_address,
        data.correspondent,
        coa,
        home_token,
        careof_token,
        crypto.binding_management_key(home_token, careof_token),
        crypto.binding_management_key(home_token, None),
    )
