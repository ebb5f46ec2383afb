"""Reconnect backoff: full jitter under a doubling ceiling capped at ``cap``.

The client's reconnect loop and resubscribes, and the Redis broker's reconnects, all
wait :func:`monument_ws.protocol.backoff.delay`; tests/test_client.py checks the delays
the client really waited over a real socket, and the last test here that a client
keeps retrying past the attempt where ``2**attempt`` no longer fits in a float.
"""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from monument_ws.client import Client
from monument_ws.protocol import backoff
from monument_ws.protocol.backoff import Backoff
from tests.conftest import eventually


def test_the_ceiling_doubles_from_initial_up_to_the_cap():
    ceilings = [backoff.delay(n, 0.25, 30.0, random=lambda: 1.0) for n in range(9)]
    assert ceilings == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_the_delay_is_the_random_draw_times_the_ceiling():
    assert backoff.delay(5, 0.25, 30.0, random=lambda: 0.0) == 0.0
    assert backoff.delay(3, 0.25, 30.0, random=lambda: 0.5) == 1.0


@given(
    attempt=st.integers(0, 60),
    initial=st.floats(0.001, 10.0),
    cap=st.floats(0.001, 100.0),
    draw=st.floats(0.0, 1.0, exclude_max=True),
)
def test_the_delay_never_leaves_its_window(attempt, initial, cap, draw):
    waited = backoff.delay(attempt, initial, cap, random=lambda: draw)
    assert 0.0 <= waited <= min(cap, initial * 2**attempt)


def test_huge_attempts_wait_the_cap_instead_of_overflowing():
    assert backoff.delay(1024, 0.25, 30.0, random=lambda: 1.0) == 30.0
    assert backoff.delay(10_000, 1e-300, 30.0, random=lambda: 1.0) == 1e-300 * 2.0**52


def test_without_a_random_source_the_delay_is_drawn_from_the_whole_window():
    draws = {backoff.delay(2, 1.0, 30.0) for _ in range(200)}
    assert all(0.0 <= d < 4.0 for d in draws)
    assert len(draws) > 100


def test_a_backoff_keeps_its_settings_and_waits_like_delay():
    steps = iter([0.5, 1.0, 0.25])
    kept = Backoff(initial=0.1, cap=0.3, random=lambda: next(steps))
    assert [kept.delay(n) for n in range(3)] == [0.05, 0.2, 0.075]


async def test_a_client_keeps_retrying_for_more_than_1024_attempts(make_server):
    """A server gone for hours: the client's reconnect loop is still waiting after attempt 1024."""
    client, _ = await make_server()
    delays: list[float] = []

    async def instant(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0)

    c = Client(str(client.make_url("/ws")), sleep=instant, backoff_initial=0.25, backoff_max=30.0)
    await c.connect()
    await client.close()
    await eventually(lambda: len(delays) > 1030, "more than 1030 reconnect attempts")
    assert c.state == "reconnecting"
    assert all(0 <= d <= 30.0 for d in delays)
    await c.close()
