"""What the CN's and the HA's binding caches share: look-up, and expiry on the engine's timer."""

from __future__ import annotations

from testbed.mip6.constants import IPPROTO_MH
from testbed.mip6.events import Action, EventSource, Send, addr
from testbed.mip6.packet import Packet, build_packet


class BindingCache(EventSource):
    """Mixed into an engine whose ``bindings`` map home addresses to bindings that have
    ``careof``, ``seq`` and ``expires_ns``; ``EXPIRED_EVENT`` names the expiry event."""

    bindings: dict
    address: bytes
    EXPIRED_EVENT = "binding_expired"

    def binding_for(self, home: bytes):
        return self.bindings.get(home)

    def next_timer(self) -> int | None:
        return min((b.expires_ns for b in self.bindings.values()), default=None)

    def handle_timer(self, now: int) -> list[Action]:
        out: list[Action] = []
        for home in [h for h, b in self.bindings.items() if b.expires_ns <= now]:
            b = self.bindings.pop(home)
            out.append(self._event(now, self.EXPIRED_EVENT, home=addr(home), careof=addr(b.careof), seq=b.seq))
        return out

    def _ba_actions(self, bu_packet: Packet, home: bytes, careof: bytes, mh: bytes, *, status: int, seq: int,
                    authenticated: bool, now: int, what: str = "BA") -> list[Action]:
        """Send a BA answering ``bu_packet``: straight to the home address when the MN sent
        from it, else to the BU's source with a type 2 routing header (RFC 6275 9.5.4)."""
        if bu_packet.src == home:
            pkt = build_packet(self.address, home, IPPROTO_MH, mh)
        else:
            pkt = build_packet(self.address, bu_packet.src, IPPROTO_MH, mh, rh2_address=home)
        return [
            Send(pkt, what),
            self._event(now, "ba_sent", home=addr(home), careof=addr(careof), status=int(status), seq=seq,
                        authenticated=authenticated),
        ]
