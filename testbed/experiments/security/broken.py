"""Each security scenario shown able to fail: the test-only weakening(s) of our agents
(``testbed/mip6/weakening.py``) with which the scenario comes out ``fail``.

    testbed experiment security --scenario replay-after-restart --weaken persist    # fail

A scenario runs against the agent of its role with every name of one entry switched off
together (``--weaken`` once per name). Scenarios that no weakening of an engine can break
are in ``EXEMPT``, with the reason. docs/conformance.md has the table;
tests/unit/test_security_broken.py holds that every scenario is in one of the two.
"""

from __future__ import annotations

# scenario -> the weakenings that make it fail: each entry a set switched off together
BROKEN_BY: dict[str, tuple[tuple[str, ...], ...]] = {
    # alone, ``sequence`` lets the replay through to the R13 bound: a step of almost 2^16 ends
    # the key (rekey_required) and the replay is dropped; without R13 too it is taken
    "replay-live": (("sequence", "r13"),),
    "replay-after-restart": (("persist",),),
    "replay-after-moves": (("sequence", "r13"),),
    "replay-past-2^15": (("r13",),),
    "forged-wrong-key": (("auth",),),
    "forged-no-bad": (("bad_required",),),
    "forged-bad-not-last": (("bad_last",),),
    "forged-other-mn": (("auth",),),
    "cn-refuses-rr-for-precomputed": (("rr_for_precomputed",),),
    # R17 is expected behaviour, not a defence: the scenario fails when the BA 0 it needs as
    # evidence is not authenticated
    "unverified-careof": (("ba_auth",),),
    "rr-default-cn": (("rr",), ("rr_lifetime",)),
    "rr-offpath-attacker": (("auth",),),
    "bidding-down-mn": (("mn_bidding_down",),),
    "rr-default-mn": (("mn_hoti_direct",),),
    "key-end-of-life-mn": (("mn_r13",),),
}

# scenario -> why no weakening of an agent makes it fail
EXEMPT: dict[str, str] = {
    "weak-keys-refused": "the tooling's refusal (testbed keygen --check, the agent's start-up checks of its key "
                         "files), not a defence of a running engine; tests/unit/test_keys.py breaks those rules one "
                         "by one",
    "rekey-with-ansible": "runs its own CN and MN agents in the handover lab (not the node under test --weaken "
                          "reaches); the defence it shows at both ends, the R13 bound, is what replay-past-2^15 "
                          "(r13) and key-end-of-life-mn (mn_r13) show able to fail",
}

assert not set(BROKEN_BY) & set(EXEMPT), set(BROKEN_BY) & set(EXEMPT)
