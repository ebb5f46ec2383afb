"""Counters of what the server did, kept cheap enough for the hot path.

Plain integers and fixed-bucket histograms, incremented inline (no locks, no
label lookups, no string formatting per frame). They are read by tests, the
admin page and, at scrape time only, by the Prometheus exporter
(:mod:`monument_ws.ops.metrics`), which turns them into metric families. Every
label set derived from them is bounded: frame kinds, routes, error codes and
refusal reasons are fixed vocabularies of this package, never strings a client
chose.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter, deque
from dataclasses import dataclass, field

#: Kinds of frames received (index into :attr:`Stats.frames_in_by`).
IN_EVENT, IN_COMMAND, IN_INVALID, IN_REFUSED = range(4)
IN_KINDS = ("event", "command", "invalid", "refused")

#: Kinds of frames accepted for sending (index into :attr:`Stats.frames_out_by`).
OUT_PUSH, OUT_REPLY, OUT_ERROR, OUT_PUBLICATION = range(4)
OUT_KINDS = ("push", "reply", "error", "publication")

#: Upper bounds (seconds) of the latency histograms' buckets.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: Recent error frames kept for the admin page.
RECENT_ERRORS = 50


class Histogram:
    """A fixed-bucket histogram: ``observe`` is one bisect and two additions."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, observations <= le), …, ("+Inf", count)]`` as Prometheus wants them."""
        out, total = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One error frame, for the admin page's "recent errors"."""

    time: float
    code: str
    message: str
    socket_id: str


@dataclass(slots=True)
class Stats:
    """Process-wide counters of one plugin instance. Counters are only ever incremented."""

    connections: int = 0
    frames_in: int = 0
    #: frames written to a transport
    frames_out: int = 0
    #: frames received, by kind (IN_EVENT … IN_REFUSED)
    frames_in_by: list[int] = field(default_factory=lambda: [0] * len(IN_KINDS))
    #: frames accepted for sending, by kind (OUT_PUSH … OUT_PUBLICATION)
    frames_out_by: list[int] = field(default_factory=lambda: [0] * len(OUT_KINDS))
    #: frames without an ``id`` that nothing handled (routing step 5 in docs/protocol.md)
    dropped: int = 0
    #: frames refused for their form (bad_json, bad_frame, missing_event)
    bad_frames: int = 0
    #: error frames sent, by code
    errors: Counter[str] = field(default_factory=Counter)
    #: the newest error frames (time, code, message, socket), oldest first
    recent_errors: deque[ErrorRecord] = field(default_factory=lambda: deque(maxlen=RECENT_ERRORS))
    #: sockets closed because their send buffer overflowed
    slow_consumers: int = 0
    #: frames discarded from overflowing send buffers (they were never written)
    send_queue_dropped: int = 0
    #: refusals by reason (origin, upgrade_rate, sockets_per_ip, session, frame_rate, …)
    refused: Counter[str] = field(default_factory=Counter)
    #: seconds from a request's start to its final answer, by route (data, handler, …)
    latency: dict[str, Histogram] = field(default_factory=dict)
    #: seconds a broker publish took (offset assigned, history appended, announced)
    publish_latency: Histogram = field(default_factory=Histogram)
    #: publishes the broker refused (e.g. Redis unreachable)
    publish_errors: int = 0
    #: sockets closed with 1001 by a graceful shutdown
    drained: int = 0

    def error(self, code: str, message: str, socket_id: str) -> None:
        """Count an error frame and remember it for the admin page."""
        self.errors[code] += 1
        self.recent_errors.append(ErrorRecord(time.time(), code, message, socket_id))

    def route_latency(self, route: str) -> Histogram:
        """The latency histogram of ``route`` (a Route value: a fixed, small set)."""
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = Histogram()
        return histogram
