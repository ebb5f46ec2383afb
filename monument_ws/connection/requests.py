"""The requests of one socket, without any I/O: slots, the waiting line, ids, one answer each.

The socket asks the table before it starts a request and tells it when the
request ends; the table never touches a task, a clock or a transport, so each
rule below is tested without a socket (``tests/test_request_table.py``).

* **Slots**: at most ``max_running`` requests run at once (with or without an
  id); up to ``max_waiting`` more wait, and start in arrival order as slots
  free up. Beyond that a request is refused as :data:`FULL`.
* **Ids**: an id is in flight from :meth:`RequestTable.admit` until the
  request ends (or is cancelled). A second request with an id in flight is
  refused as :data:`DUPLICATE`; the first is unaffected.
* **Exactly one answer**: :meth:`Request.claim` returns True once per
  request; whoever gets True sends the request's one final answer (a reply,
  the end of a stream, or an error), everyone after gets False.
* **Cancel** claims the answer for the caller (who sends ``cancelled``),
  frees the id at once and hands back the request so its task can be
  cancelled; a waiting request that was cancelled is skipped when its turn
  comes.
* **Draining**: after :meth:`RequestTable.stop` every new request is refused
  as :data:`UNAVAILABLE`; :attr:`RequestTable.idle` says when the last running
  or waiting one has ended.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any

from ..protocol.frames import RequestId


class Refusal(enum.Enum):
    """Why :meth:`RequestTable.admit` did not take a request."""

    DUPLICATE = "an id still in flight"
    FULL = "every slot running and the waiting line full"
    UNAVAILABLE = "the socket takes no new requests (it drains)"


DUPLICATE, FULL, UNAVAILABLE = Refusal.DUPLICATE, Refusal.FULL, Refusal.UNAVAILABLE


class Request:
    """One admitted request. ``job`` is the caller's (what to run); ``task`` is set by the
    caller while the request runs, so that a cancel or a close can cancel it."""

    __slots__ = ("answered", "id", "job", "running", "task")

    def __init__(self, request_id: RequestId | None, job: Any) -> None:
        self.id = request_id
        self.job = job
        self.answered = False
        self.running = False
        self.task: Any = None

    def claim(self) -> bool:
        """True the first time: the caller now owes the request its one final answer."""
        if self.answered:
            return False
        self.answered = True
        return True


class RequestTable:
    """The running and waiting requests of one socket (see the module's rules)."""

    __slots__ = ("_by_id", "_running", "_stopped", "_waiting", "max_running", "max_waiting")

    def __init__(self, max_running: int, max_waiting: int) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self._by_id: dict[RequestId, Request] = {}
        # A dict used as an ordered set: an empty one costs 64 bytes, an empty set 216.
        self._running: dict[Request, None] = {}
        # Exists only while something waits (an empty deque costs 600 bytes per idle socket).
        self._waiting: deque[Request] | None = None
        self._stopped = False

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting) if self._waiting is not None else 0

    @property
    def idle(self) -> bool:
        """Nothing runs and nothing waits."""
        return not self._running and not self._waiting

    @property
    def stopped(self) -> bool:
        return self._stopped

    def free_now(self, request_id: RequestId | None) -> bool:
        """Whether a request with this id would start at once: not a duplicate, not stopped,
        a slot free and nothing waiting. A request that ends within the caller's own step
        (a plain-function handler) runs without being admitted when this holds."""
        return (
            not self._waiting
            and not self._stopped
            and len(self._running) < self.max_running
            and (request_id is None or request_id not in self._by_id)
        )

    def get(self, request_id: RequestId) -> Request | None:
        """The request with this id in flight (running or waiting), if any."""
        return self._by_id.get(request_id)

    def admit(self, request_id: RequestId | None, job: Any) -> Request | Refusal:
        """Take a new request: a :class:`Request` (``running`` says whether it starts now or
        waits for a slot), or why not."""
        if request_id is not None and request_id in self._by_id:
            return DUPLICATE
        if self._stopped:
            return UNAVAILABLE
        if len(self._running) < self.max_running:
            request = Request(request_id, job)
            request.running = True
            self._running[request] = None
        else:
            if self.waiting >= self.max_waiting:
                return FULL
            request = Request(request_id, job)
            if self._waiting is None:
                self._waiting = deque()
            self._waiting.append(request)
        if request_id is not None:
            self._by_id[request_id] = request
        return request

    def finish(self, request: Request) -> Request | None:
        """``request`` ended: free its slot and its id. Returns the waiting request that takes
        the slot (now running), or None. A second call for the same request does nothing."""
        request.running = False
        if self._running.pop(request, False) is False:  # ended already, or the table closed
            return None
        if request.id is not None and self._by_id.get(request.id) is request:
            del self._by_id[request.id]
        waiting = self._waiting
        while waiting:
            following = waiting.popleft()
            if following.answered:  # cancelled while it waited
                continue
            following.running = True
            self._running[following] = None
            if not waiting:
                self._waiting = None
            return following
        self._waiting = None
        return None

    def cancel(self, request_id: RequestId) -> Request | None:
        """Cancel the request with this id: None when no unanswered request has it. Otherwise
        the answer is claimed for the caller and the id is free again; a running request
        keeps its slot until its task ends (the caller cancels ``task``)."""
        request = self._by_id.get(request_id)
        if request is None or not request.claim():
            return None
        del self._by_id[request_id]
        return request

    def stop(self) -> None:
        """Refuse every new request from now on (as UNAVAILABLE)."""
        self._stopped = True

    def close(self) -> list[Request]:
        """Forget everything (the socket is gone); returns the requests that were running."""
        running = list(self._running)
        self._stopped = True
        self._running = {}
        self._by_id = {}
        self._waiting = None
        return running
