"""Broken variants of our agents: each test-only weakening (``testbed/mip6/weakening.py``)
against the checks that guard the defence it turns off.

    testbed conformance --target ours --broken-variants

For every weakening the agent of its role (CN, HA or MN) is started with that one defence
off and the checks it should break are run; each must come out ``fail``. A weakening whose
checks all still pass means a check that cannot fail: the run's verdict is then ``fail``.
Every weakening breaks at least one check (``NO_CHECK`` says why the others cannot), and
every check of every profile is broken by at least one weakening (``NOT_COVERED`` would say
why not; tests/unit/test_weakening.py holds both).
"""

from __future__ import annotations

from testbed.mip6.weakening import BY_ROLE, role_of

__all__ = ["BREAKS", "NO_CHECK", "NOT_COVERED", "broken_by", "role_of"]

# weakening -> the checks that must fail with it
BREAKS: dict[str, tuple[str, ...]] = {
    # correspondent node
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
    "hdrlen": ("CN-HDRLEN",),
    "keeps_serving": ("CN-HDRLEN", "CN-KEEPS-SERVING"),  # CN-HDRLEN's malformed BU stops it first
    # home agent
    "ha_auth": ("HA-03",),
    "ha_replay_option": ("HA-04",),
    "ha_timestamp": ("HA-05",),
    "ha_ba_auth": ("HA-01", "HA-06"),
    "ha_home_prefix": ("HA-06",),
    "ha_sequence": ("HA-07",),
    "ha_tunnel": ("HA-02",),
    "ha_reverse_tunnel": ("HA-08",),
    "ha_dereg": ("HA-09",),
    "ha_keeps_serving": ("HA-KEEPS-SERVING",),
    # mobile node
    "mn_first_reg_timeout": ("MN-01",),
    "mn_home_replay": ("MN-02",),
    "mn_nonce_indices": ("MN-03",),
    "mn_hoti_direct": ("MN-04",),
    "mn_retransmit": ("MN-05",),
    "mn_cn_ba_auth": ("MN-06",),
    "mn_resync": ("MN-07",),
    "mn_bidding_down": ("MN-08",),
    "mn_brr": ("MN-09",),
    "mn_rate_limit": ("MN-10",),
    "mn_home_ba_auth": ("MN-11",),
    "mn_keeps_serving": ("MN-KEEPS-SERVING",),
}

# weakenings that break no conformance check, and why
NO_CHECK: dict[str, str] = {
    "store_ack": "a BU acknowledged although its number could not be made durable: a tester cannot fill the "
                 "node's disk; testbed experiment faults (state-dir-full) fails with it",
    "mn_r13": "the mobile node's end of a key (R13) takes 2^15 of sequence space: testbed experiment security "
              "(key-end-of-life-mn) fails with it",
}

# checks no weakening breaks, and why (none)
NOT_COVERED: dict[str, str] = {}

for _name in BREAKS:
    role_of(_name)  # a known weakening
assert not set(BREAKS) & set(NO_CHECK), set(BREAKS) & set(NO_CHECK)
assert set(BREAKS) | set(NO_CHECK) == {n for table in BY_ROLE.values() for n in table}


def broken_by(check_id: str) -> list[str]:
    """The weakenings that must make ``check_id`` fail."""
    return [name for name, checks in BREAKS.items() if check_id in checks]
