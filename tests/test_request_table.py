"""The request table alone: slots, the waiting line, ids, one answer each, cancel, drain.

No socket, no loop: every rule of :mod:`monument_ws.connection.requests` is driven
by calling the table directly, and a property test runs random sequences of
operations against a plain model of the rules.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from monument_ws.connection.requests import DUPLICATE, FULL, UNAVAILABLE, Request, RequestTable


def admitted(value: Any) -> Request:
    assert isinstance(value, Request), value
    return value


def test_slots_then_waiting_line_then_full():
    """max_running run at once, max_waiting more wait, the next one is refused as FULL."""
    table = RequestTable(max_running=2, max_waiting=1)
    a, b = admitted(table.admit(1, "a")), admitted(table.admit(None, "b"))
    c = admitted(table.admit(3, "c"))
    assert (a.running, b.running, c.running) == (True, True, False)
    assert (table.running, table.waiting) == (2, 1)
    assert table.admit(4, "d") is FULL
    assert table.admit(None, "e") is FULL


def test_waiting_requests_start_in_arrival_order_as_slots_free():
    """Each finished request hands its slot to the oldest waiting one; ids are freed."""
    table = RequestTable(max_running=1, max_waiting=5)
    first = admitted(table.admit(1, "first"))
    line = [admitted(table.admit(i, f"w{i}")) for i in range(2, 5)]
    started = []
    current: Request | None = first
    while current is not None:
        following = table.finish(current)
        if following is not None:
            assert following.running
            started.append(following.job)
        current = following
    assert started == ["w2", "w3", "w4"]
    assert table.idle
    assert all(table.get(i) is None for i in range(1, 5))
    assert not any(request.running for request in [first, *line])


def test_duplicate_id_is_refused_and_the_first_is_unaffected():
    """An id in flight (running or waiting) refuses a second request with it."""
    table = RequestTable(max_running=1, max_waiting=1)
    first = admitted(table.admit("x", 1))
    waiting = admitted(table.admit("y", 2))
    assert table.admit("x", 3) is DUPLICATE
    assert table.admit("y", 4) is DUPLICATE
    assert table.get("x") is first
    assert not first.answered
    assert table.get("y") is waiting
    table.finish(first)
    assert admitted(table.admit("x", 5)).job == 5  # free again once the first ended


def test_exactly_one_answer_per_request():
    """claim() is True once; every later claim is False."""
    request = admitted(RequestTable(1, 0).admit(7, None))
    assert request.claim() is True
    assert [request.claim() for _ in range(3)] == [False, False, False]


def test_cancel_a_running_request_frees_its_id_but_not_its_slot():
    """Cancel claims the answer and frees the id at once; the slot is freed when the task ends."""
    table = RequestTable(max_running=1, max_waiting=1)
    running = admitted(table.admit(1, "r"))
    assert table.cancel(1) is running
    assert running.answered
    assert not running.claim()
    assert table.get(1) is None
    again = admitted(table.admit(1, "again"))  # the id is free, but no slot: it waits
    assert not again.running
    assert table.finish(running) is again


def test_cancel_a_waiting_request_skips_it():
    """A waiting request that was cancelled never starts."""
    table = RequestTable(max_running=1, max_waiting=3)
    running = admitted(table.admit(1, "r"))
    admitted(table.admit(2, "cancelled"))
    kept = admitted(table.admit(3, "kept"))
    assert table.cancel(2) is not None
    assert table.finish(running) is kept
    assert table.finish(kept) is None
    assert table.idle


def test_cancel_unknown_or_answered_ids_is_none():
    """Nothing to cancel: an id never seen, a request already answered, a second cancel."""
    table = RequestTable(max_running=2, max_waiting=0)
    answered = admitted(table.admit(1, None))
    answered.claim()
    admitted(table.admit(2, None))
    assert table.cancel(99) is None
    assert table.cancel(1) is None
    assert table.cancel(2) is not None
    assert table.cancel(2) is None


def test_stop_refuses_new_requests_and_idle_follows_the_last():
    """After stop(), new requests are UNAVAILABLE; running and waiting ones go on to the end."""
    table = RequestTable(max_running=1, max_waiting=1)
    running, waiting = admitted(table.admit(1, None)), admitted(table.admit(2, None))
    table.stop()
    assert table.stopped
    assert table.admit(3, None) is UNAVAILABLE
    assert table.admit(None, None) is UNAVAILABLE
    assert table.admit(1, None) is DUPLICATE  # still its own request's id
    assert not table.idle
    assert table.finish(running) is waiting
    assert table.finish(waiting) is None
    assert table.idle


def test_close_returns_the_running_and_forgets_everything():
    """close() hands back the running requests; finishing one afterwards starts nothing."""
    table = RequestTable(max_running=1, max_waiting=2)
    running = admitted(table.admit(1, None))
    admitted(table.admit(2, None))
    assert table.close() == [running]
    assert table.idle
    assert table.get(2) is None
    assert table.finish(running) is None
    assert table.admit(5, None) is UNAVAILABLE


ops = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.one_of(st.none(), st.integers(0, 6))),
        st.tuples(st.just("finish"), st.integers(0, 50)),
        st.tuples(st.just("cancel"), st.integers(0, 6)),
        st.tuples(st.just("claim"), st.integers(0, 50)),
    ),
    max_size=80,
)


@given(ops=ops, max_running=st.integers(1, 3), max_waiting=st.integers(0, 3))
def test_random_operations_keep_the_rules(ops, max_running, max_waiting):
    """Any sequence of admit/finish/cancel/claim matches a plain model of the rules."""
    table = RequestTable(max_running, max_waiting)
    running: list[Request] = []
    line: deque[Request] = deque()  # cancelled ones stay in it until their turn, as in the table
    ids: dict[int | str, Request] = {}
    for op, arg in ops:
        if op == "admit":
            result = table.admit(arg, None)
            if arg is not None and arg in ids:
                assert result is DUPLICATE
            elif len(running) < max_running:
                assert isinstance(result, Request)
                assert result.running
                running.append(result)
            elif len(line) < max_waiting:
                assert isinstance(result, Request)
                assert not result.running
                line.append(result)
            else:
                assert result is FULL
            if isinstance(result, Request) and arg is not None:
                ids[arg] = result
        elif op == "finish" and running:
            done = running.pop(arg % len(running))
            if done.id is not None and ids.get(done.id) is done:
                del ids[done.id]
            while line and line[0].answered:
                line.popleft()
            expected = line.popleft() if line else None
            assert table.finish(done) is expected
            if expected is not None:
                running.append(expected)
        elif op == "cancel":
            target = ids.get(arg)
            cancellable = target is not None and not target.answered
            cancelled = table.cancel(arg)
            if not cancellable:
                assert cancelled is None
            else:
                assert cancelled is target
                assert target is not None
                assert target.answered
                del ids[arg]
        elif op == "claim" and running:
            request = running[arg % len(running)]
            answered_before = request.answered
            assert request.claim() is not answered_before
            assert request.answered
        assert table.running == len(running) <= max_running
        assert table.waiting == len(line) <= max_waiting
        assert all(table.get(i) is r for i, r in ids.items())
        assert table.idle == (not running and not line)


def test_finishing_a_request_twice_frees_one_slot():
    """A second finish() of the same request (a cancelled task's callback after its own end)
    neither frees another slot nor starts another waiting request."""
    table = RequestTable(max_running=1, max_waiting=2)
    first = admitted(table.admit(1, None))
    second, third = admitted(table.admit(2, None)), admitted(table.admit(3, None))
    assert table.finish(first) is second
    assert table.finish(first) is None
    assert table.running == 1
    assert table.waiting == 1
    assert table.finish(second) is third
