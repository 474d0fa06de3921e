"""What the CN's and the HA's binding caches share: look-up, and expiry on the engine's timer."""

from __future__ import annotations

from testbed.mip6.events import Action, EventSource, addr


class BindingCache(EventSource):
    """Mixed into an engine whose ``bindings`` map home addresses to bindings that have
    ``careof``, ``seq`` and ``expires_ns``; ``EXPIRED_EVENT`` names the expiry event."""

    bindings: dict
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
