"""Errors of the protocol core."""


class CodecError(ValueError):
    """A packet, header, message or option that cannot be decoded (or encoded) as given.

    The codec raises only this for malformed input; the engines catch it and drop the
    packet with the message as the logged reason.
    """
