"""Test-only weakenings: one switch per defence, to show that each conformance check and
security scenario can fail. NEVER for real use.

An agent accepts the configuration key ``test_weaken: [name, ...]`` only when the
environment variable ``MIP6_TESTBED_ALLOW_WEAKENING=1`` is set (``testbed.agent.config``);
an engine given a name it does not know refuses to start. Each name turns exactly one
defence off; where the engines check a defence, a weakened engine takes the other branch.
docs/conformance.md lists them with the checks they break.
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
}
# Only the correspondent node can be weakened so far; home agent and mobile node checks are
# shown able to fail by their own tests (tests/agent).
HA: dict[str, str] = {}
MN: dict[str, str] = {}
BY_ROLE = {"cn": CN, "ha": HA, "mn": MN}


def check_names(role: str, names, source: str) -> frozenset[str]:
    """The weakenings ``names`` for an agent of ``role``, or ConfigError naming the unknown one."""
    known = BY_ROLE[role]
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise ConfigError(f"{source}: test_weaken: {name!r} is not a weakening of a {role} agent "
                              f"(known: {', '.join(sorted(known))})")
    return frozenset(names)
