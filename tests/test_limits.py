"""Rate limits alone, on a fake clock: the token bucket and the flooding episode."""

from __future__ import annotations

from monument_ws.connection.limits import FloodGuard, TokenBucket, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_gives_burst_then_rate():
    """A full bucket gives ``burst`` tokens at once, then ``rate`` per second."""
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.1
    assert bucket.take()
    assert not bucket.take()
    assert not bucket.full
    clock.now += 1.0
    assert bucket.full


def run(guard: FloodGuard, clock: Clock, per_second: float, seconds: float) -> list[Verdict]:
    verdicts = []
    for _ in range(int(per_second * seconds)):
        clock.now += 1 / per_second
        verdicts.append(guard.check())
        if verdicts[-1] is Verdict.CLOSE:
            break
    return verdicts


def test_a_flood_at_four_times_the_rate_is_closed_though_tokens_trickle_in():
    """Finding 3 of the socket-core issue: refusals interleaved with accepted frames still
    add up, so 4x the rate is told to close after ``burst`` refusals in the episode."""
    clock = Clock()
    guard = FloodGuard(rate=50, burst=20, clock=clock)
    verdicts = run(guard, clock, per_second=200, seconds=5)
    assert verdicts[-1] is Verdict.CLOSE
    refused = [v for v in verdicts if v is not Verdict.ACCEPT]
    assert len(refused) == 20 + 1  # burst refusals, then the one past the limit closes
    assert verdicts.count(Verdict.FLOODING) == 1  # one episode, reported once
    accepted_after_first_refusal = verdicts[verdicts.index(Verdict.FLOODING) :].count(
        Verdict.ACCEPT
    )
    assert accepted_after_first_refusal > 0  # tokens did trickle in: they reset nothing


def test_slightly_above_the_rate_is_closed_eventually():
    """1.1x the rate: refusals accrue slowly, but the episode never ends, so it closes."""
    clock = Clock()
    guard = FloodGuard(rate=50, burst=20, clock=clock)
    verdicts = run(guard, clock, per_second=55, seconds=60)
    assert verdicts[-1] is Verdict.CLOSE
    assert verdicts.count(Verdict.FLOODING) == 1


def test_below_the_rate_is_never_refused():
    """Steady traffic under the rate is accepted forever."""
    clock = Clock()
    guard = FloodGuard(rate=50, burst=20, clock=clock)
    assert set(run(guard, clock, per_second=45, seconds=60)) == {Verdict.ACCEPT}


def test_an_episode_ends_when_the_client_slows_down_and_refills_the_bucket():
    """A burst, a pause long enough to refill, another burst: two episodes, no close."""
    clock = Clock()
    guard = FloodGuard(rate=50, burst=20, clock=clock)
    first = [guard.check() for _ in range(35)]  # 20 accepted, 15 refused at one instant
    assert first.count(Verdict.FLOODING) == 1
    assert Verdict.CLOSE not in first
    clock.now += 1.0  # 50 tokens' worth: the bucket is full again
    assert guard.check() is Verdict.ACCEPT
    assert guard.refusals == -1
    second = [guard.check() for _ in range(35)]
    assert second.count(Verdict.FLOODING) == 1
    assert Verdict.CLOSE not in second
