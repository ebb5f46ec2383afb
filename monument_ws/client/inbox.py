"""The peer-queue inbox: messages the server queued for this client, waiting for ``consume()``.

The server numbers them (``seq``) per client and sends each again after a reconnect
until the client has it; the client presents the highest ``seq`` it holds when it
reconnects (:attr:`Inbox.last`), and drops any it already had, so each message
reaches the inbox at most once. The inbox keeps at most ``size`` messages, each for
``ttl`` seconds (the Client's ``peer_queue_size`` and ``peer_queue_ttl``); what those
bounds push out before it was consumed is counted in ``dropped`` (``peer_queue_dropped``),
oldest first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ..protocol.frames import Queued


class Inbox:
    def __init__(self, size: int, ttl: float, clock: Callable[[], float]) -> None:
        self.size = size
        self.ttl = ttl
        self.dropped = 0
        self._clock = clock
        self._messages: deque[tuple[Queued, float]] = deque()  # with the time each expires
        self._last = 0

    @property
    def last(self) -> int:
        """The highest ``seq`` received: the server never sends it again."""
        return self._last

    def __len__(self) -> int:
        self._expire()
        return len(self._messages)

    def receive(self, seq: int, data: Any) -> None:
        if seq <= self._last:
            return  # already received (sent again after a reconnect)
        self._last = seq
        self._messages.append((Queued(data, seq), self._clock() + self.ttl))
        while len(self._messages) > self.size:
            self._messages.popleft()
            self.dropped += 1

    def take(self, accept: Callable[[Any], bool] | None) -> Queued | None:
        """The oldest message ``accept`` accepts (None: any), removed; None when none does."""
        self._expire()
        for entry in self._messages:
            if accept is None or accept(entry[0].data):
                self._messages.remove(entry)
                return entry[0]
        return None

    def _expire(self) -> None:
        now = self._clock()
        while self._messages and self._messages[0][1] < now:
            self._messages.popleft()
            self.dropped += 1
