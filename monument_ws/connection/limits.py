"""Rate limits without I/O: a token bucket, and the flood rule that closes a socket.

Both take the clock as an argument, so tests drive them with a fake one.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take()`` says whether one was available."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    @property
    def full(self) -> bool:
        now = self._clock()
        return self._tokens + (now - self._last) * self.rate >= self.burst


class Verdict(enum.IntEnum):
    """What :meth:`FloodGuard.check` says of one incoming frame."""

    ACCEPT = 0
    #: refused, and it is the first refusal of a flooding episode (log it, once)
    FLOODING = 1
    #: refused, within an episode already reported
    REFUSE = 2
    #: refused, and the episode passed its limit: close the socket (4029)
    CLOSE = 3


class FloodGuard(TokenBucket):
    """The frame rate limit of one socket: a token bucket plus the flooding episode.

    A frame that finds no token is refused. The first refusal starts a
    flooding episode; the episode ends only when the bucket is full again,
    that is once the client has sent below ``rate`` for long enough to earn
    ``burst`` tokens back. Refusals are counted over the whole episode, so
    the frames the client gets through in between (a token now and then)
    never reset the count: a client that keeps sending above the rate is
    refused ``burst`` more frames and then told to close, however its
    refusals and accepted frames interleave. A client that slows down starts
    afresh. At 4x the rate that takes about ``burst / (3 * rate)`` seconds
    after the bucket ran dry; at 1.1x, ``burst / (0.1 * rate)``.
    """

    __slots__ = ("refusals",)

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        super().__init__(rate, burst, clock)
        #: refusals in the current episode; -1 when there is none
        self.refusals = -1

    def check(self) -> Verdict:
        # take(), inlined: this runs for every frame a socket receives
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= 1:
            if self.refusals >= 0 and tokens >= self.burst:
                self.refusals = -1  # the bucket filled up again: the episode is over
            self._tokens = tokens - 1
            return Verdict.ACCEPT
        self._tokens = tokens
        self.refusals += 1
        if self.refusals == 0:
            self.refusals = 1
            return Verdict.FLOODING
        if self.refusals > self.burst:
            return Verdict.CLOSE
        return Verdict.REFUSE
