"""What the CN's and the HA's binding caches share: look-up, and expiry on the engine's timer."""

from __future__ import annotations

import heapq

from testbed.mip6.actions import Action, Send
from testbed.mip6.events import BaSent, BindingExpired, addr
from testbed.mip6.packet import Packet, mh_packet


class BindingCache:
    """Mixed into an engine whose ``bindings`` map home addresses to bindings that have
    ``careof``, ``seq`` and ``expires_ns``; ``EXPIRED_EVENT`` is the expiry event's class.

    The engine calls ``_expires_at`` whenever it creates a binding or changes its expiry.
    Expiry times are kept in a heap (entries of deleted or refreshed bindings are skipped
    when they come up): ``next_timer``, which the agent asks after every packet, costs
    O(log n) instead of a scan of every binding (at 10,000 bindings the scan took about
    1 ms per packet).
    """

    bindings: dict
    _seq: dict  # store key -> the sequence state of a peer (the engine's)
    address: bytes
    node: str
    EXPIRED_EVENT = BindingExpired

    def binding_for(self, home: bytes):
        return self.bindings.get(home)

    def _expires_at(self, home: bytes, expires_ns: int) -> None:
        heap = self.__dict__.get("_expiry_heap")
        if heap is None:
            heap = self.__dict__["_expiry_heap"] = []
        heapq.heappush(heap, (expires_ns, home))
        if len(heap) > 2 * len(self.bindings) + 64:  # mostly stale entries: rebuild
            heap[:] = [(b.expires_ns, h) for h, b in self.bindings.items()]
            heapq.heapify(heap)

    def _undo_registration(self, key: str, old_state, home: bytes, old_binding) -> None:
        """Put a peer's sequence state (``_seq[key]``, None: there was none) and its binding
        back as they were before a BU whose number could not be made durable."""
        if old_state is None:
            self._seq.pop(key, None)
        else:
            self._seq[key] = old_state
        if old_binding is None:
            self.bindings.pop(home, None)
        else:
            self.bindings[home] = old_binding
            self._expires_at(home, old_binding.expires_ns)

    def _earliest(self) -> list | None:
        """The expiry heap with a live binding's entry on top, or None when there is none."""
        heap = self.__dict__.get("_expiry_heap")
        while heap:
            expires_ns, home = heap[0]
            binding = self.bindings.get(home)
            if binding is not None and binding.expires_ns == expires_ns:
                return heap
            heapq.heappop(heap)
        return None

    def next_timer(self) -> int | None:
        heap = self._earliest()
        return heap[0][0] if heap else None

    def handle_timer(self, now: int) -> list[Action]:
        out: list[Action] = []
        while (heap := self._earliest()) and heap[0][0] <= now:
            _, home = heapq.heappop(heap)
            b = self.bindings.pop(home)
            out.append(self.EXPIRED_EVENT(now, self.node, home=addr(home), careof=addr(b.careof), seq=b.seq))
        return out

    def _ba_actions(self, bu_packet: Packet, home: bytes, careof: bytes, mh: bytes, *, status: int, seq: int,
                    authenticated: bool, now: int, what: str = "BA") -> list[Action]:
        """Send a BA answering ``bu_packet``: straight to the home address when the MN sent
        from it, else to the BU's source with a type 2 routing header (RFC 6275 9.5.4)."""
        src = bu_packet.src
        pkt = mh_packet(self.address, home, mh) if src == home else mh_packet(self.address, src, mh, home)
        return [
            Send(pkt, what),
            BaSent(now, self.node, home=addr(home), careof=addr(careof), status=int(status), seq=seq,
                   authenticated=authenticated),
        ]
