"""Eager task start: run a coroutine's first step now, as its own task.

A request whose handler answers without suspending (an echo, a lookup in
memory) then costs no turn of the event loop: its task is done when
:func:`start` returns. A handler that suspends goes on as an ordinary task.
Either way the handler runs *as its task*: ``asyncio.current_task()``,
``asyncio.timeout()``, ``TaskGroup`` and context variables behave exactly as
in a task made by ``loop.create_task``.

Python 3.12 offers this as ``Task(..., eager_start=True)``. Python 3.11 has
no such flag, so there the task is built with the public constructor while
the one step it schedules is taken aside and run at once, in the task's
context -- which is what the 3.12 flag does. This relies on one property of
3.11's C ``Task`` (a frozen release): its constructor schedules its first
step with exactly one ``loop.call_soon(step, context=...)``.
``tests/test_eager.py`` checks that property, and :func:`start` falls back to
``loop.create_task`` wherever it cannot hold (a task already running, a task
factory set, a loop without an instance ``__dict__`` such as uvloop's).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["start"]

if sys.version_info >= (3, 12):

    def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro``'s first step now, as its own task (done on return if it never waits)."""
        return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)

else:

    class _StepCatcher:
        """Stands in for ``loop.call_soon`` while a task is built, keeping its first step."""

        __slots__ = ("context", "step")

        def __init__(self) -> None:
            self.step: Callable[[], object] | None = None
            self.context: contextvars.Context | None = None

        def __call__(
            self, callback: Callable[[], object], *, context: contextvars.Context | None = None
        ) -> None:
            self.step = callback
            self.context = context

    _catcher = _StepCatcher()

    def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro``'s first step now, as its own task (done on return if it never waits)."""
        loop = asyncio.get_running_loop()
        slots = getattr(loop, "__dict__", None)
        if (
            slots is None
            or loop.get_task_factory() is not None
            or asyncio.current_task(loop) is not None  # a step cannot start inside another
        ):
            return loop.create_task(coro)
        slots["call_soon"] = _catcher
        try:
            task = asyncio.Task(coro, loop=loop)
        finally:
            del slots["call_soon"]
        step, context = _catcher.step, _catcher.context
        _catcher.step = _catcher.context = None
        if step is None or context is None:  # only if the property above stopped holding
            raise RuntimeError("asyncio.Task did not schedule its first step with call_soon")
        context.run(step)
        return task
