"""Health checks: liveness, and readiness that follows the broker connection and the drain."""

import asyncio

from aiohttp import web

import monument_ws
from monument_ws.brokers.redis import RedisBroker
from tests.conftest import DEADLINE
from tests.test_cluster import own_redis  # noqa: F401 - the fixture of a killable redis-server


async def ready_becomes(client, status: int) -> None:
    """Poll /health/ready over HTTP until it answers ``status`` (generous deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while (await client.get("/health/ready")).status != status:
        if loop.time() > deadline:
            raise AssertionError(f"/health/ready never answered {status}")
        await asyncio.sleep(0.02)


async def test_health_is_off_by_default_and_answers_when_on(make_server, aiohttp_client, bus):
    """Without ``health`` there is no route; with it /live and /ready answer 200 (memory broker)."""
    plain = web.Application()
    monument_ws.setup(plain, websocket=True, bus=bus)
    assert (await (await aiohttp_client(plain)).get("/health/live")).status == 404

    client, _ = await make_server(health=True, health_path="/status")
    live = await client.get("/status/live")
    assert (live.status, await live.json()) == (200, {"status": "ok"})
    ready = await client.get("/status/ready")
    assert (ready.status, await ready.json()) == (
        200,
        {"ready": True, "broker": True, "draining": False},
    )


async def test_readiness_follows_the_redis_connection(make_server, own_redis):  # noqa: F811
    """Killing this test's own redis-server turns /ready to 503 (broker false); once it is
    back the broker reconnects and /ready is 200 again. /live stays 200 throughout."""
    await own_redis()
    client, ws = await make_server(health=True, broker=RedisBroker(own_redis.url, backoff_max=0.2))
    await ws.broker.subscribe("chat")  # the broker notices a lost connection on its reader
    assert (await client.get("/health/ready")).status == 200

    own_redis.kill()
    await ready_becomes(client, 503)
    body = await (await client.get("/health/ready")).json()
    assert body == {"ready": False, "broker": False, "draining": False}
    assert (await client.get("/health/live")).status == 200

    await own_redis()
    await ready_becomes(client, 200)
    body = await (await client.get("/health/ready")).json()
    assert body == {"ready": True, "broker": True, "draining": False}
    assert ws.broker.reconnects == 1
