"""A Redis that restarts without its data (kill -9, no persistence) under two server processes:
what was acknowledged after the restart reaches a subscriber on the other process, once each, in
order, and the subscriber learns that the outage itself may have lost some."""

import asyncio
import contextlib
from typing import Any

from monument_ws import Unavailable
from monument_ws.client import Client, Message
from monument_ws.protocol.errors import Timeout
from tests.conftest import eventually
from tests.test_cluster import Server, own_redis  # noqa: F401 - the fixture of a killable redis-server


async def test_publications_acknowledged_after_a_redis_restart_reach_the_other_process(own_redis):  # noqa: F811
    await own_redis()
    a = await Server("--broker", own_redis.url, "--secret", "s").start()
    b = await Server("--broker", own_redis.url, "--secret", "s").start()
    received: list[Message] = []
    resubscribed: list[Any] = []
    acknowledged: dict[str, list[int]] = {"before": [], "after": []}
    phase = "before"
    stop = asyncio.Event()
    try:
        async with (
            Client(a.url, call_timeout=5) as publisher,
            Client(b.url, call_timeout=5) as subscriber,
        ):
            subscriber.on("ws:resubscribed", resubscribed.append)
            await subscriber.subscribe("chat", received.append)
            await publisher.subscribe("chat", lambda message: None)  # "chat": subscribers publish

            async def publish_forever() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        await publisher.publish("chat", "n", n)
                        # A publication acknowledged once the restart began was made on the
                        # new Redis (the old one answers nothing after kill -9).
                        acknowledged[phase].append(n)
                    except (Unavailable, Timeout):
                        pass
                    # Paced so the new epoch's history (50 in the template app) keeps all of them.
                    await asyncio.sleep(0.04)

            task = asyncio.create_task(publish_forever())
            await eventually(lambda: len(received) >= 20, "publications before the outage")
            own_redis.kill()
            await asyncio.sleep(0.5)  # an outage that lasts; publishes fail meanwhile
            phase = "after"
            await own_redis()
            await eventually(lambda: len(acknowledged["after"]) >= 60, "publications after")
            stop.set()
            await task
            after = acknowledged["after"]
            await eventually(
                lambda: {m.data for m in received} >= set(after),
                "every publication acknowledged after the restart",
            )
            numbers = [m.data for m in received]
            assert numbers == sorted(set(numbers)), "once each, in order"
            assert resubscribed == [{"channel": "chat", "recovered": False}]
            assert subscriber.subscriptions["chat"].recovered is False
    finally:
        stop.set()
        for server in (a, b):
            with contextlib.suppress(Exception):
                await server.stop()
