"""Eager task start (monument_ws.connection.eager): a request's first step runs at once, as its own task.

On Python 3.11 this rests on a property of the C ``Task`` (its constructor
schedules the first step with one ``loop.call_soon``): these tests fail if it
stops holding. Over a real socket: handlers see their own task, and
``asyncio.timeout()`` and ``TaskGroup`` work in them, suspending or not.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable
from typing import Any

import pytest

from monument_ws.connection import eager
from tests.conftest import DEADLINE

where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="unset")


async def from_a_callback(make: Callable[[], asyncio.Task[Any]]) -> asyncio.Task[Any]:
    """Call ``make`` the way the socket's reader does: in a loop callback, with no task running."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[asyncio.Task[Any]] = loop.create_future()

    def call() -> None:
        try:
            made.set_result(make())
        except Exception as exc:
            made.set_exception(exc)

    loop.call_soon(call)
    return await made


async def test_a_coroutine_that_never_waits_is_done_when_start_returns():
    seen: list[asyncio.Task[Any] | None] = []

    async def answer() -> None:
        seen.append(asyncio.current_task())

    states: list[bool] = []

    def make() -> asyncio.Task[Any]:
        task = eager.start(answer())
        states.append(task.done())
        return task

    task = await from_a_callback(make)
    assert states == [True]
    assert seen == [task]
    assert "call_soon" not in vars(asyncio.get_running_loop())


async def test_a_coroutine_that_waits_goes_on_as_its_own_task_with_timeout_and_taskgroup():
    events: list[str] = []

    async def slow() -> None:
        me = asyncio.current_task()
        assert me is not None
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.sleep(0))
        events.append("group")
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(DEADLINE)
        except TimeoutError:
            events.append("timed out")
        assert asyncio.current_task() is me
        assert me.cancelling() == 0

    task = await from_a_callback(lambda: eager.start(slow()))
    assert not task.done()
    await asyncio.wait_for(task, DEADLINE)
    assert events == ["group", "timed out"]


async def test_the_task_runs_in_a_copy_of_the_callers_context():
    async def read_and_write() -> str:
        value = where.get()
        where.set("inside")
        return value

    def make() -> asyncio.Task[Any]:
        where.set("caller")
        return eager.start(read_and_write())  # type: ignore[arg-type]

    context = contextvars.copy_context()
    made: list[asyncio.Task[Any]] = []
    loop = asyncio.get_running_loop()
    ran = loop.create_future()

    def call() -> None:
        made.append(make())
        ran.set_result(None)

    loop.call_soon(call, context=context)
    await ran
    assert made[0].result() == "caller"
    assert context[where] == "caller"  # the task's own change stays in the task


async def test_inside_a_running_task_it_falls_back_to_an_ordinary_task_on_3_11():
    """3.11's stand-in cannot step a task while another one runs (this test's), so it makes an
    ordinary one; 3.12's own eager start can, and runs it to its end at once."""
    ran: list[bool] = []

    async def answer() -> None:
        ran.append(True)

    task = eager.start(answer())
    assert task.done() is (sys.version_info >= (3, 12))
    await task
    assert ran == [True]


async def test_a_task_factory_is_respected():
    loop = asyncio.get_running_loop()
    made: list[Any] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def answer() -> None:
        return None

    loop.set_task_factory(factory)
    try:
        task = await from_a_callback(lambda: eager.start(answer()))
        await task
    finally:
        loop.set_task_factory(None)
    # 3.12's eager Task bypasses factories like any direct Task(); 3.11 falls back to them.
    assert len(made) == (0 if sys.version_info >= (3, 12) else 1)


async def test_a_refused_coroutine_leaves_the_loop_as_it_was():
    with pytest.raises(TypeError):
        await from_a_callback(lambda: eager.start("not a coroutine"))  # type: ignore[arg-type]
    assert "call_soon" not in vars(asyncio.get_running_loop())


async def test_handlers_run_as_their_own_task_with_timeout_and_taskgroup(make_server, connect):
    """Over a real socket: each request's handler is its own task, never the reader's, and
    asyncio.timeout() and TaskGroup work in it whether or not it suspends."""
    client, ws = await make_server()
    tasks: list[asyncio.Task[Any] | None] = []

    @ws.handler("quick")
    async def quick(message, socket):
        tasks.append(asyncio.current_task())
        async with asyncio.timeout(DEADLINE):  # noqa: ASYNC100 (it must work without a wait too)
            return "quick"

    @ws.handler("slow")
    async def slow(message, socket):
        tasks.append(asyncio.current_task())
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.sleep(0))
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(DEADLINE)
        except TimeoutError:
            return "timed out"
        return "not timed out"

    peer = await connect(client)
    assert (await peer.request({"event": "quick", "id": 1}))["data"] == "quick"
    assert (await peer.request({"event": "slow", "id": 2}))["data"] == "timed out"
    assert (await peer.request({"event": "quick", "id": 3}))["data"] == "quick"
    assert None not in tasks
    assert len(set(map(id, tasks))) == 3
    assert (await peer.request({"event": "ws:ping", "id": 4}))["event"] == "ws:ping"
