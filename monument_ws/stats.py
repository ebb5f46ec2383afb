"""Counters of what the server did with client frames (read by tests and, later, metrics)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Stats:
    """Process-wide counters of one plugin instance. Only ever incremented."""

    connections: int = 0
    frames_in: int = 0
    frames_out: int = 0
    #: frames without an ``id`` that nothing handled (design.md routing step 5)
    dropped: int = 0
    #: frames refused for their form (bad_json, bad_frame, missing_event)
    bad_frames: int = 0
    #: error frames sent, by code
    errors: Counter[str] = field(default_factory=Counter)
    #: sockets closed because their send queue overflowed
    slow_consumers: int = 0
    #: refusals by reason (origin, upgrade_rate, sockets_per_ip, session, frame_rate, …)
    refused: Counter[str] = field(default_factory=Counter)
