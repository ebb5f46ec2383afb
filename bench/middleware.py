"""What outgoing frame middleware costs channel fan-out (not a test: run it by hand).

    .venv/bin/python bench/middleware.py [--subscribers 200] [--messages 200]

One server process (this one) publishes to a channel with N subscribers held
by a separate client process, with no middleware and then with an outgoing
hook that stamps ``sender``/``dt``. It reports the server's CPU time per
delivered frame (``time.process_time``: the client process is not counted)
and how many times the hook ran, which shows the encode-once rule: once per
publication, not once per subscriber. Traffic stays on 127.0.0.1 and every
run is bounded by the two counts.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import textwrap
import time
from typing import Any

from aiohttp import web

import monument_ws

CLIENT = textwrap.dedent(
    """
    import asyncio, sys, aiohttp

    async def main(url, n, m):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            sockets = [await s.ws_connect(url) for _ in range(n)]
            for ws in sockets:
                await ws.receive()  # welcome
                await ws.send_json({"event": "ws:subscribe", "id": 1, "data": {"channel": "bench"}})
                await ws.receive()  # the subscribe reply
            print("ready", flush=True)

            async def drain(ws):
                for _ in range(m):
                    await ws.receive()

            await asyncio.gather(*(drain(ws) for ws in sockets))
            print("done", flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def scenario(hooked: bool, subscribers: int, messages: int) -> dict[str, Any]:
    app = web.Application()
    ws = monument_ws.setup(
        app,
        websocket=True,
        bus=monument_ws.EventBus(),
        upgrade_rate=0,
        heartbeat=0,
        channels={"bench": {"history_size": 0}},
    )
    calls = 0
    if hooked:

        @ws.middleware.outgoing
        def stamp(frame: dict[str, Any], sock: Any) -> None:
            nonlocal calls
            calls += 1
            frame["sender"] = "bench"
            frame["dt"] = time.time()

    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, f"ws://127.0.0.1:{port}/ws", str(subscribers), str(messages),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    try:
        assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"ready"
        calls = 0  # count the fan-out only, not the welcome and subscribe replies
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(messages):
            await ws.publish("bench", "tick", {"n": i, "payload": "x" * 64})
            if i % 20 == 0:
                await asyncio.sleep(0)  # let the writers run, as a real server would
        assert (await asyncio.wait_for(child.stdout.readline(), 120)).strip() == b"done"
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
        await runner.cleanup()
    deliveries = subscribers * messages
    return {
        "middleware": "stamp sender/dt" if hooked else "none",
        "deliveries": deliveries,
        "server_cpu_s": round(cpu, 3),
        "us_per_delivery": round(cpu / deliveries * 1e6, 2),
        "hook_calls": calls,
        "wall_s": round(wall, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    rows = [await scenario(hooked, args.subscribers, args.messages) for hooked in (False, True)]
    for row in rows:
        print(row)
    print(
        f"with middleware / without: {rows[1]['us_per_delivery'] / rows[0]['us_per_delivery']:.2f}x CPU per delivery"
    )


if __name__ == "__main__":
    asyncio.run(main())
