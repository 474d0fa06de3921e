"""Test-only weakenings: one switch per defence, to show that each conformance check and
security scenario can fail. NEVER for real use.

An agent accepts the configuration key ``test_weaken: [name, ...]`` only when the
environment variable ``MIP6_TESTBED_ALLOW_WEAKENING=1`` is set (``testbed.agent.config``);
an engine given a name it does not know refuses to start. Each name turns exactly one
defence off; where the engines check a defence, a weakened engine takes the other branch.
The names are unique across the three roles (the home agent's start with ``ha_``, the
mobile node's with ``mn_``), so ``role_of`` tells whose agent a name weakens. The
``keeps_serving`` names are the agent's (``testbed/agent/daemon.py``), not the engine's.
docs/conformance.md lists them with the checks and security scenarios they break
(``testbed/experiments/conformance/broken.py``, ``testbed/experiments/security/broken.py``).
"""

from __future__ import annotations

from testbed.errors import ConfigError

ENV = "MIP6_TESTBED_ALLOW_WEAKENING"

CN = {
    "auth": "the authenticator of a BU is not checked (R5)",
    "bad_required": "a precomputed peer's BU without Binding Authorization Data is taken as authenticated (R5)",
    "bad_last": "Binding Authorization Data need not be the last option; options after it are honoured",
    "duplicates": "options that appear twice are not refused (the layout check is off)",
    "sequence": "sequence numbers are not compared: any number is accepted (R4, R14)",
    "wrap": "sequence numbers are compared as plain integers, not modulo 2^16",
    "persist": "sequence numbers are kept in memory only: a restart forgets them (R4)",
    "r13": "no bound on the total advance of a key's sequence number (R13)",
    "store_ack": "a BU whose number could not be made durable is accepted and acknowledged anyway (R4)",
    "rr": "return routability is not served: HoTIs are dropped (R12)",
    "rr_for_precomputed": "HoTIs of precomputed home addresses are answered (R15)",
    "home_reg": "BUs with the H flag are processed as correspondent registrations (no BA 131/139)",
    "ack_on_reject": "a rejected BU is answered only when its A flag is set",
    "ack_optional": "an accepted BU is answered even when its A flag is clear",
    "ba_auth": "BAs carry no Binding Authorization Data (R7)",
    "binding_errors": "no Binding Errors are sent",
    "be_careof": "a packet with a Home Address option is judged by its home address alone, not its source",
    "rr_lifetime": "return-routability bindings are not capped at 420 s",
    "precomputed_lifetime": "precomputed bindings are capped at 420 s like return routability (R16)",
    "nonce_expiry": "nonce indices the node never issued are taken as the current ones (no BA 136-138)",
    "rr_indices": "a return-routability BU without Nonce Indices uses the current nonces",
    "nonce_indices_strict": "a precomputed peer's BU with Nonce Indices is dropped (R6)",
    "checksum": "the Mobility Header checksum is not checked",
    "unknown_options": "unrecognised destination options are skipped whatever their action bits",
    "dereg": "a de-registration leaves the binding in place",
    "hdrlen": "a Mobility Header's length is taken from the IPv6 payload: a Header Len too short for its type "
              "is not refused",
    "keeps_serving": "the agent exits (status 70) after it drops a malformed packet, instead of serving on",
}
HA = {
    "ha_auth": "the MN-HA authenticator of a home registration is not checked (RFC 4285)",
    "ha_replay_option": "a home registration without the Mobility Message Replay Protection option is processed "
                        "(no BA 145)",
    "ha_timestamp": "replay-protection timestamps are not compared: a replayed home registration passes (no BA 144)",
    "ha_ba_auth": "the home agent's BAs carry no MN-HA authenticator (RFC 4285)",
    "ha_home_prefix": "a home address outside the home prefix is registered (no BA 132)",
    "ha_sequence": "sequence numbers of home registrations are not compared (no BA 135)",
    "ha_tunnel": "packets for a registered home address are not tunnelled to its care-of address",
    "ha_reverse_tunnel": "a reverse-tunnelled packet is forwarded whatever its outer source, not only from the "
                         "registered care-of address",
    "ha_dereg": "a de-registration leaves the binding (and its tunnel) in place",
    "ha_keeps_serving": "the agent exits (status 70) after it drops a malformed packet, instead of serving on",
}
MN = {
    "mn_first_reg_timeout": "the first home registration is retransmitted after 1 s, not "
                            "InitialBindackTimeoutFirstReg (1.5 s)",
    "mn_home_replay": "home registrations carry no Mobility Message Replay Protection option (RFC 4285)",
    "mn_nonce_indices": "a precomputed peer's BU carries Nonce Indices (RFC 4449 4: SHOULD NOT)",
    "mn_hoti_direct": "the HoTI goes straight from the home address on the foreign link, not reverse-tunnelled "
                      "through the home agent",
    "mn_retransmit": "an authenticated BA 0 from a correspondent does not end the BU's retransmissions",
    "mn_cn_ba_auth": "an unauthenticated BA from a precomputed correspondent is taken (R7)",
    "mn_resync": "an authenticated BA 135 is ignored: the next BU does not go on after its number",
    "mn_bidding_down": "Binding Errors and unauthenticated BAs 136-138 from a precomputed correspondent make the "
                       "mobile node fall back to return routability with it (R15)",
    "mn_brr": "Binding Refresh Requests are ignored",
    "mn_rate_limit": "no MAX_UPDATE_RATE: BUs, HoTIs and CoTIs go to a node as often as asked (RFC 6275 11.8)",
    "mn_home_ba_auth": "a home BA is taken without checking its MN-HA authenticator (RFC 4285)",
    "mn_r13": "no bound on the total advance of a precomputed key's sequence number at the mobile node (R13)",
    "mn_keeps_serving": "the agent exits (status 70) after it drops a malformed packet, instead of serving on",
}
BY_ROLE = {"cn": CN, "ha": HA, "mn": MN}
# the agent's, not an engine's: testbed/agent/daemon.py exits after a malformed packet's drop
KEEPS_SERVING = frozenset({"keeps_serving", "ha_keeps_serving", "mn_keeps_serving"})
# the exit status of an agent so weakened (EX_SOFTWARE)
KEEPS_SERVING_EXIT = 70


def role_of(name: str) -> str:
    """The role (cn, ha, mn) whose agent ``name`` weakens; ConfigError for an unknown name."""
    for role, known in BY_ROLE.items():
        if name in known:
            return role
    everything = sorted(n for known in BY_ROLE.values() for n in known)
    raise ConfigError(f"--weaken {name}: not a weakening of our agents (known: {', '.join(everything)})")


def check_names(role: str, names, source: str) -> frozenset[str]:
    """The weakenings ``names`` for an agent of ``role``, or ConfigError naming the unknown one."""
    known = BY_ROLE[role]
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise ConfigError(f"{source}: test_weaken: {name!r} is not a weakening of a {role} agent "
                              f"(known: {', '.join(sorted(known))})")
    return frozenset(names)
