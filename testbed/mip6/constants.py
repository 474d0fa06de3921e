"""Protocol numbers and constants of RFC 6275 (Mobile IPv6), RFC 4449 and RFC 4285."""

from __future__ import annotations

from enum import IntEnum

# IPv6 next-header values the engine handles.
IPPROTO_HOPOPTS = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_MH = 135

# Destination option carrying the home address (RFC 6275 6.3), alignment 8n+6.
OPT_HOME_ADDRESS = 201
# Type 2 routing header (RFC 6275 6.4).
ROUTING_TYPE_2 = 2


class MHType(IntEnum):
    BRR = 0
    HOTI = 1
    COTI = 2
    HOT = 3
    COT = 4
    BU = 5
    BA = 6
    BE = 7


class OptType(IntEnum):
    PAD1 = 0
    PADN = 1
    BINDING_REFRESH_ADVICE = 2
    ALTERNATE_COA = 3
    NONCE_INDICES = 4
    BINDING_AUTH_DATA = 5
    MOBILITY_MESSAGE_AUTH = 9  # RFC 4285
    REPLAY_PROTECTION = 10  # RFC 4285


class BAStatus(IntEnum):
    ACCEPTED = 0
    UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    HOME_REGISTRATION_NOT_SUPPORTED = 131
    NOT_HOME_SUBNET = 132
    NOT_HOME_AGENT = 133
    DAD_FAILED = 134
    SEQUENCE_OUT_OF_WINDOW = 135
    EXPIRED_HOME_NONCE_INDEX = 136
    EXPIRED_CAREOF_NONCE_INDEX = 137
    EXPIRED_NONCES = 138
    REGISTRATION_TYPE_CHANGE_DISALLOWED = 139
    MIPV6_ID_MISMATCH = 144  # RFC 4285
    MIPV6_MESG_ID_REQD = 145  # RFC 4285
    MIPV6_AUTH_FAIL = 146  # RFC 4285


class BEStatus(IntEnum):
    UNKNOWN_BINDING_FOR_HOME_ADDRESS = 1
    UNRECOGNIZED_MH_TYPE = 2


# RFC 4285 Mobility Message Authentication option subtypes.
MN_HA_AUTH_SUBTYPE = 1
MN_AAA_AUTH_SUBTYPE = 2

# Binding Update flags (high octet of the 16-bit flags field).
BU_FLAG_A = 0x8000
BU_FLAG_H = 0x4000
BU_FLAG_L = 0x2000
BU_FLAG_K = 0x1000
# Binding Acknowledgement flags (octet after the status).
BA_FLAG_K = 0x80

# RFC 6275 section 12 (seconds) and timing, in nanoseconds where the engines use them.
SECOND_NS = 1_000_000_000
MAX_NONCE_LIFETIME_S = 240
MAX_TOKEN_LIFETIME_S = 210
MAX_RR_BINDING_LIFETIME_S = 420
INITIAL_BINDACK_TIMEOUT_S = 1
MAX_BINDACK_TIMEOUT_S = 32
LIFETIME_UNIT_S = 4  # BU/BA lifetime field counts units of 4 seconds
# The MN refreshes a binding after this share of the lifetime granted in the BA (RFC 6275
# 11.7.1 leaves the moment to the MN; a quarter of the lifetime leaves room for retransmissions).
REFRESH_AT_FRACTION = 0.75
MAX_LIFETIME_UNITS = 0xFFFF

# Sizes.
ADDRESS_LEN = 16
NONCE_LEN = 8
TOKEN_LEN = 8
COOKIE_LEN = 8
KBM_LEN = 20
AUTHENTICATOR_LEN = 12  # first 96 bits of HMAC_SHA1
MIN_KCN_LEN = 20

# RFC 6275 section 12: the first home registration's initial retransmission timeout, and
# how many messages of one type a mobile node sends to one node per second (section 11.8).
INITIAL_BINDACK_TIMEOUT_FIRST_REG_NS = 1_500_000_000
MAX_UPDATE_RATE = 3
