"""When to retry a lost connection: exponential backoff with full jitter.

The close-code table (:class:`~monument_ws.protocol.frames.Reconnect`) says whether
to reconnect; this module says when. Retry ``attempt`` (0 for the first) waits a
uniformly random part of a ceiling that doubles from ``initial`` up to ``cap``:
``random() * min(cap, initial * 2**attempt)``. Drawing from the whole window, not
adding a little noise to a fixed delay, spreads out peers that all lost the same
server at the same moment, so they do not come back all at once.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass

# Past 2**52 the ceiling is the cap for any sensible ``initial``; stopping the exponent
# there keeps the product a float (initial * 2.0**1024 raises OverflowError), so a peer
# that has been retrying for hours does not crash its retry loop. monument.js stops at
# the same exponent.
_MAX_EXPONENT = 52


def delay(
    attempt: int,
    initial: float,
    cap: float,
    random: Callable[[], float] = _random.random,
) -> float:
    """Seconds to wait before retry ``attempt``: ``random() * min(cap, initial * 2**attempt)``."""
    return random() * min(cap, initial * 2.0 ** min(attempt, _MAX_EXPONENT))


@dataclass(slots=True)
class Backoff:
    """The settings of :func:`delay` kept together, for code that retries in several places."""

    initial: float
    cap: float
    random: Callable[[], float] = _random.random

    def delay(self, attempt: int) -> float:
        return delay(attempt, self.initial, self.cap, self.random)
