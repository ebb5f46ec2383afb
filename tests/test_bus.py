import asyncio
import gc

import pytest

from monument_ws import EventBus, NotFound, Timeout


async def test_on_emit_and_return_values(bus: EventBus):
    """Receivers get the event name and keywords; emit returns their values in order."""
    seen = []

    @bus.on("ping")
    async def first(event, *, data, **_):
        seen.append((event, data))
        return 1

    @bus.on("ping")
    def second(event, **_):
        return 2

    assert await bus.emit("ping", "x") == [1, 2]
    assert seen == [("ping", "x")]


async def test_receivers_are_held_strongly_until_off(bus: EventBus):
    """A receiver defined in a factory survives garbage collection; off() removes it."""

    def install():
        async def closure(event, **_):
            return "alive"

        bus.on("e", closure)
        return closure

    receiver = install()
    gc.collect()
    assert await bus.emit("e") == ["alive"]
    bus.off("e", receiver)
    assert await bus.emit("e") == []


async def test_once_runs_a_single_time(bus: EventBus):
    """once() receivers disconnect themselves after the first emit."""
    calls = []
    bus.once("e", lambda event, **kw: calls.append(kw["data"]))
    await bus.emit("e", 1)
    await bus.emit("e", 2)
    assert calls == [1]
    assert not bus.has_receivers("e")


async def test_ask_answered_by_return_value(bus: EventBus):
    """A provider's return value answers the asker."""
    bus.on("data:get:x", lambda event, **_: {"v": 1})
    assert await bus.ask("data:get:x") == {"v": 1}


async def test_ask_answered_by_scoped_set(bus: EventBus):
    """An emit of :set: naming the request answers exactly that request."""

    @bus.on("data:get:user")
    async def provide(event, *, data, request, **_):
        await asyncio.sleep(0)
        await bus.emit("data:set:user", {"id": data["id"]}, request=request)

    a, b = await asyncio.gather(
        bus.ask("data:get:user", {"id": 1}), bus.ask("data:get:user", {"id": 2})
    )
    assert (a, b) == ({"id": 1}, {"id": 2})
    assert bus.pending() == 0


async def test_unscoped_set_answers_only_requests_without_data(bus: EventBus):
    """An unscoped :set: answers data-less waits, never a request with parameters."""
    bus.on("data:get:list", lambda event, **_: None)  # answers later, unscoped
    plain = asyncio.create_task(bus.ask("data:get:list"))
    scoped = asyncio.create_task(bus.ask("data:get:list", {"page": 2}, timeout=0.2))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await bus.emit("data:set:list", ["everyone"])
    assert await plain == ["everyone"]
    with pytest.raises(Timeout):
        await scoped
    assert bus.pending() == 0


async def test_ask_without_provider_fails_at_once(bus: EventBus):
    """No receiver at all: NotFound immediately, nothing left waiting."""
    with pytest.raises(NotFound):
        await bus.ask("data:get:nothing")
    assert bus.pending() == 0


async def test_ask_rejects_non_data_events(bus: EventBus):
    """ask() is for x:get:y events only."""
    with pytest.raises(ValueError, match="not a data event"):
        await bus.ask("hello")


async def test_cancelled_ask_leaves_nothing_behind(bus: EventBus):
    """Cancelling an asker (a socket closing) removes its pending wait."""
    bus.on("data:get:slow", lambda event, **_: None)
    task = asyncio.create_task(bus.ask("data:get:slow", timeout=None))
    await asyncio.sleep(0)
    assert bus.pending() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bus.pending() == 0


async def test_provider_exception_reaches_the_asker(bus: EventBus):
    """A provider's error propagates and the wait is removed."""

    def broken(event, **_):
        raise LookupError("gone")

    bus.on("data:get:broken", broken)
    with pytest.raises(LookupError):
        await bus.ask("data:get:broken")
    assert bus.pending() == 0


async def test_looking_up_unknown_events_creates_no_signals(bus: EventBus):
    """has_receivers on random names (as sockets send them) allocates nothing."""
    for i in range(100):
        assert not bus.has_receivers(f"random-{i}")
    assert bus.signals() == {}


async def test_default_bus_exists():
    """monument-style apps share the module-level bus."""
    from monument_ws import events

    assert isinstance(events, EventBus)
