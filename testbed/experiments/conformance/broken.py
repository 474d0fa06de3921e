"""Broken variants of our correspondent node: each test-only weakening
(``testbed/mip6/weakening.py``) against the checks that guard the defence it turns off.

    testbed conformance --target ours --broken-variants

For every weakening the CN agent is started with that one defence off and the checks it
should break are run; each must come out ``fail``. A weakening whose checks all still pass
means a check that cannot fail: the run's verdict is then ``fail``.
"""

from __future__ import annotations

from testbed.mip6.weakening import CN

# weakening -> the checks that must fail with it
BREAKS: dict[str, tuple[str, ...]] = {
    "auth": ("CN-4449-03", "CN-4449-05", "CN-ORDER-1", "CN-RR-5"),
    "bad_required": ("CN-4449-02",),
    "bad_last": ("CN-4449-04",),
    "duplicates": ("CN-ORDER-2",),
    "sequence": ("CN-4449-07", "CN-4449-10", "CN-RR-6"),
    "wrap": ("CN-4449-11",),
    "persist": ("CN-4449-12",),
    "r13": ("CN-4449-17",),
    "rr": ("CN-RR-1",),
    "rr_for_precomputed": ("CN-4449-16",),
    "home_reg": ("CN-4449-15", "CN-ORDER-3"),
    "ack_on_reject": ("CN-4449-08",),
    "ack_optional": ("CN-4449-09",),
    "ba_auth": ("CN-4449-01",),
    "binding_errors": ("CN-BE-1", "CN-BE-2"),
    "be_careof": ("CN-4449-01",),
    "rr_lifetime": ("CN-RR-2",),
    "precomputed_lifetime": ("CN-4449-13",),
    "nonce_expiry": ("CN-RR-4",),
    "rr_indices": ("CN-RR-3",),
    "nonce_indices_strict": ("CN-4449-06",),
    "checksum": ("CN-CKSUM",),
    "unknown_options": ("CN-OPT-PP",),
    "dereg": ("CN-4449-14",),
    # store_ack needs a store that fails: the fault scenarios exercise it, not these checks
}

assert set(BREAKS) <= set(CN), set(BREAKS) - set(CN)


def broken_by(check_id: str) -> list[str]:
    """The weakenings that must make ``check_id`` fail."""
    return [name for name, checks in BREAKS.items() if check_id in checks]
