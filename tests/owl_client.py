"""An @owlmeans/socket client for the tests, written from the format docs/protocol.md documents.

It sends envelopes as @owlmeans/socket's ``Connection`` does (``call`` with a uuid id, the
arguments as the payload list and a ``timeout``; ``request``; ``notify``; ``enqueue``;
``auth``) and reads what comes back as its ``receive`` does: results and errors settle the
call with their id, an error's ``"<type>|||<message>|||<stack>"`` payload is rebuilt as a typed
error (:class:`OwlError`), ``call`` frames run a registered performer and are answered with
``result`` or ``error``, ``message`` frames go onto a local queue that :meth:`OwlPeer.consume`
takes from, and every frame also reaches :attr:`OwlPeer.heard` (its ``listen()``). No
monument_ws code is used.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

DEADLINE = 10.0


class OwlError(Exception):
    """A marshalled error rebuilt: its class name (``type``) and message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.type = kind
        self.message = message


def unmarshal(payload: Any) -> OwlError:
    kind, _, rest = str(payload).partition("|||")
    return OwlError(kind, rest.partition("|||")[0])


Performer = Callable[..., Awaitable[Any]]


class OwlPeer:
    """An @owlmeans/socket client over one real WebSocket, reading in a task of its own."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.calls: dict[str, asyncio.Future[Any]] = {}
        self.responses: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.performers: dict[str, Performer] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.queue: list[tuple[Any, Any]] = []
        self.queued = asyncio.Event()
        self.auths: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stage: str | None = None
        #: every frame, as its ``listen()`` listeners get them
        self.heard: asyncio.Queue[Any] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""
        self.done = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, envelope: dict[str, Any] | str | bytes) -> None:
        if isinstance(envelope, bytes):
            await self.ws.send_bytes(envelope)
        else:
            await self.ws.send_str(envelope if isinstance(envelope, str) else json.dumps(envelope))

    async def call(self, method: str, *args: Any, timeout: int = 60000) -> Any:
        """``call(method, ...args)``: the result, or the typed error it answered with."""
        call_id = str(uuid.uuid4())
        answer = asyncio.get_running_loop().create_future()
        self.calls[call_id] = answer
        msg = {"type": "call", "id": call_id, "method": method, "payload": list(args)}
        await self.send({**msg, "timeout": timeout})
        try:
            return await asyncio.wait_for(answer, DEADLINE)
        finally:
            self.calls.pop(call_id, None)

    async def request(self, event: str, data: Any = None) -> asyncio.Queue[dict[str, Any]]:
        """``request(payload)``: the queue its responses arrive on."""
        request_id = str(uuid.uuid4())
        responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.responses[request_id] = responses
        await self.send(
            {"type": "request", "id": request_id, "payload": {"event": event, "data": data}}
        )
        return responses

    async def notify(self, event: str, payload: Any) -> None:
        await self.send({"type": "event", "event": event, "payload": payload})

    async def enqueue(self, payload: Any, message_id: str | None = None) -> None:
        await self.send({"type": "message", "payload": payload, "id": message_id})

    def consume(self) -> tuple[Any, Any, int] | None:
        if not self.queue:
            return None
        payload, message_id = self.queue.pop(0)
        return payload, message_id, len(self.queue)

    async def auth(self, stage: str, payload: Any) -> Any:
        """``auth(stage, payload)``: the next stage's payload; OwlError when refused."""
        self.stage = stage
        await self.send({"type": "auth", "stage": stage, "payload": payload})
        got = await asyncio.wait_for(self.auths.get(), DEADLINE)
        if got.get("stage") is None:
            raise unmarshal(got.get("payload"))
        self.stage = got["stage"]
        return got.get("payload")

    async def next_event(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), DEADLINE)

    async def next_heard(self) -> Any:
        return await asyncio.wait_for(self.heard.get(), DEADLINE)

    async def closed(self) -> tuple[int | None, str]:
        await asyncio.wait_for(self.done.wait(), DEADLINE)
        return self.close_code, self.close_reason

    async def close(self) -> None:
        await self.ws.close()
        await self._reader
        for task in list(self._tasks):
            await task

    async def _read(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._receive(msg.data)
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    self.close_reason = str(msg.extra or "")
                    break
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            self.close_code = self.ws.close_code
            self.done.set()

    def _receive(self, text: str) -> None:
        try:
            envelope = json.loads(text)
        except ValueError:
            self.heard.put_nowait(text)
            return
        self.heard.put_nowait(envelope)
        kind = envelope.get("type", "message")
        envelope_id = envelope.get("id")
        if kind in ("result", "error"):
            answer = self.calls.get(envelope_id)
            if answer is not None and not answer.done():
                if kind == "result":
                    answer.set_result(envelope.get("payload"))
                else:
                    answer.set_exception(unmarshal(envelope.get("payload")))
        elif kind == "response" and envelope_id in self.responses:
            self.responses[envelope_id].put_nowait(envelope)
        elif kind == "call":
            task = asyncio.get_running_loop().create_task(self._perform(envelope))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "event":
            self.events.put_nowait(envelope)
        elif kind == "message":
            self.queue.append((envelope.get("payload"), envelope.get("id")))
            self.queued.set()
        elif kind == "auth":
            self.auths.put_nowait(envelope)

    async def _perform(self, envelope: dict[str, Any]) -> None:
        performer = self.performers.get(envelope["method"])
        answer: dict[str, Any] = {"id": envelope["id"]}
        try:
            if performer is None:
                raise OwlError("SocketErrorConnectionUnsupported", envelope["method"])
            answer |= {"type": "result", "payload": await performer(*envelope["payload"])}
        except OwlError as exc:
            answer |= {"type": "error", "payload": f"{exc.type}|||{exc.message}|||at perform"}
        await self.send(answer)
