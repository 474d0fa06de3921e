"""The Mobile IPv6 protocol, sans-I/O: codec, crypto, RFC 4449 keys, sequence numbers, state machines."""
