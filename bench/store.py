"""The store's cost: persisted publications against the broker alone, in one bounded run.

    .venv/bin/python bench/store.py [--postgres postgresql://postgres@127.0.0.1:5432/test]

One process serves monument_ws (memory broker) on 127.0.0.1 with a store in a PostgreSQL schema
of this run's own (dropped at the end), and one raw WebSocket subscriber reads the channel.
For a persisted channel (``log:*``, ``persist: true``) and a channel of the broker alone
(``live:*``) it measures:

* ``throughput``: ``--count`` publications from ``--concurrency`` concurrent publishers
  (``ws.publish`` awaited in a loop each): publications per second from the first publish to
  the last delivery, and for the store how many transactions the writer needed;
* ``latency``: ``--rate`` publications per second for ``--duration`` seconds, one at a time:
  publish -> deliver p50/p99 in milliseconds (the publish time travels in the data; server and
  subscriber share this process's clock and event loop, so the figure includes the loop's own
  scheduling).

Figures go to stdout and, with ``--json``, to a file; docs/benchmarks.md records a run by hand.
Every step is bounded (fixed counts and durations, a timeout per step), traffic only to
127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

import monument_ws
from monument_ws.stores.postgres import PostgresStore

STEP_TIMEOUT = 120.0


async def serve(url: str, schema: str) -> tuple[web.AppRunner, monument_ws.MonumentWS, int]:
    app = web.Application()
    ws = monument_ws.setup(
        app,
        bus=monument_ws.EventBus("bench-store"),
        websocket=True,
        upgrade_rate=0,
        store=url,
        store_schema=schema,
        channels={"log:*": {"persist": True, "history_size": 100}, "live:*": {}},
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, ws, port


class Subscriber:
    """A raw socket subscribed to one channel, recording when each publication arrived."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.arrived: list[tuple[float, Any]] = []

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, port: int, channel: str) -> Subscriber:
        ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws", protocols=("monument.v1",))
        await ws.receive_json()  # ws:welcome
        await ws.send_json({"event": "ws:subscribe", "id": 1, "data": {"channel": channel}})
        while (await ws.receive_json()).get("id") != 1:
            pass
        return cls(ws)

    async def take(self, count: int) -> None:
        while len(self.arrived) < count:
            frame = json.loads((await self.ws.receive()).data)
            if "offset" in frame:
                self.arrived.append((time.perf_counter(), frame["data"]))


async def throughput(
    ws: monument_ws.MonumentWS, sub: Subscriber, channel: str, count: int, concurrency: int
) -> dict[str, Any]:
    store = ws.durable.store if ws.durable is not None else None
    writer = (
        store.writer if isinstance(store, PostgresStore) and channel.startswith("log:") else None
    )
    batches = writer.batches if writer is not None else 0
    per = count // concurrency

    async def publisher(k: int) -> None:
        for n in range(per):
            await ws.publish(channel, "e", k * per + n)

    started = time.perf_counter()
    reading = asyncio.create_task(sub.take(per * concurrency))
    await asyncio.wait_for(
        asyncio.gather(*(publisher(k) for k in range(concurrency))), STEP_TIMEOUT
    )
    await asyncio.wait_for(reading, STEP_TIMEOUT)
    elapsed = time.perf_counter() - started
    row = {"publications": per * concurrency, "per_second": round(per * concurrency / elapsed)}
    if writer is not None:
        row["transactions"] = writer.batches - batches
    return row


async def latency(
    ws: monument_ws.MonumentWS, sub: Subscriber, channel: str, rate: float, duration: float
) -> dict[str, Any]:
    count = int(rate * duration)
    reading = asyncio.create_task(sub.take(count))
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
        await ws.publish(channel, "e", time.perf_counter())
    await asyncio.wait_for(reading, STEP_TIMEOUT)
    delays = sorted((at - sent) * 1000 for at, sent in sub.arrived)
    return {
        "publications": count,
        "p50_ms": round(statistics.median(delays), 2),
        "p99_ms": round(delays[int(len(delays) * 0.99) - 1], 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    schema = f"mwsbench_{uuid.uuid4().hex[:10]}"
    runner, ws, port = await serve(args.postgres, schema)
    results: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as session:
            for kind, channel in (("persisted", "log:t"), ("broker", "live:t")):
                sub = await Subscriber.open(session, port, channel)
                results[f"throughput-{kind}"] = await throughput(
                    ws, sub, channel, args.count, args.concurrency
                )
                await sub.ws.close()
            for kind, channel in (("persisted", "log:l"), ("broker", "live:l")):
                sub = await Subscriber.open(session, port, channel)
                results[f"latency-{kind}"] = await latency(
                    ws, sub, channel, args.rate, args.duration
                )
                await sub.ws.close()
    finally:
        await runner.cleanup()
        connection = await asyncpg.connect(args.postgres)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.concurrency, args.rate, args.duration = 200, 20, 200.0, 0.5
    results = asyncio.run(run(args))
    for name, row in results.items():
        print(f"{name:22} {row}")
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
