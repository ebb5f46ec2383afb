"""A bounded load test of a sharded deployment, all on 127.0.0.1: the figures of docs/scaling.md.

Starts its own redis-servers (``--shards``, 3 by default) on free ports (no persistence) and
``--processes`` (4) ``monument-ws run`` processes serving the demo app with
``--broker <every shard's URL, comma-separated>``; opens ``--channels`` x ``--fanout``
sockets (each subscribed to one channel) from this process, a channel's subscribers spread
over the processes round-robin (``--placement spread``: each publication reaches up to
``--fanout`` processes) or all on one process (``--placement channel``, as a load balancer
routing by channel would: each publication reaches one); then publishes ``--rate`` publications a second for
``--seconds`` seconds through a :class:`~monument_ws.publisher.Publisher` with the same
broker, each to the next channel in turn, and measures on the sockets:

* deliveries per second (wall) and per server CPU-second (the four processes' utime + stime
  from ``/proc``), publish -> deliver latency p50/p99 (the publisher and the sockets share
  this process's clock);
* Redis commands per publication and per subscription (``INFO commandstats`` deltas summed
  over the shards) and Redis CPU-seconds per publication (``used_cpu_user + used_cpu_sys``);
* bytes on the wire per delivery (the frame and its WebSocket header);
* the servers' resident memory (mean per process) and its growth per subscribed socket.

Everything it starts it stops, in ``finally``; the whole run is bounded by ``--deadline``
seconds. ``python bench/shards.py --json out.json`` writes the figures too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from servers import LOAD_TEST_FLAGS  # bench/servers.py: this script's folder is on sys.path

from monument_ws.publisher import Publisher

TICK = os.sysconf("SC_CLK_TCK")

#: ``monument-ws run`` flags of a load test: the suite's (limits raised out of the way of one
#: machine's sockets, heartbeats off), and one workers' secret for the four processes.
FLAGS = (*LOAD_TEST_FLAGS, "--secret", "bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def wait_for_port(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if loop.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"nothing answers on port {port}") from None
            await asyncio.sleep(0.05)


async def redis_stats(urls: list[str]) -> tuple[int, float]:
    """(commands, CPU seconds) so far, summed over the shards."""
    calls, cpu = 0, 0.0
    for url in urls:
        r = aioredis.from_url(url)
        try:
            stats = await r.info("commandstats")
            calls += sum(int(v["calls"]) for v in stats.values())
            info = await r.info("cpu")
            cpu += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        finally:
            await r.aclose()
    return calls, cpu


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def frame_header(length: int) -> int:
    """Bytes of a server's (unmasked) WebSocket frame header for a payload of ``length``."""
    return 2 if length < 126 else 4 if length < 65536 else 10


class Sockets:
    """The subscribers: what each received, and when."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.deliveries = 0
        self.wire_bytes = 0
        self.readers: list[asyncio.Task[None]] = []

    async def open(
        self, session: aiohttp.ClientSession, url: str, channel: str
    ) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(url, protocols=("monument.v1",))
        await ws.receive()  # ws:welcome
        await ws.send_str(
            json.dumps({"event": "ws:subscribe", "id": 1, "data": {"channel": channel}})
        )
        while True:
            frame = json.loads((await ws.receive()).data)
            if frame.get("id") == 1:
                if "error" in frame:
                    raise RuntimeError(f"subscribe refused: {frame}")
                break
        self.readers.append(asyncio.get_running_loop().create_task(self._read(ws)))
        return ws

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            now = time.time()
            frame = json.loads(msg.data)
            if frame.get("event") == "tick":
                self.deliveries += 1
                size = len(msg.data.encode())
                self.wire_bytes += size + frame_header(size)
                self.latencies.append(now - frame["data"]["t"])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.deadline
    procs: list[subprocess.Popen[bytes]] = []
    sockets = Sockets()
    try:
        urls = []
        for _ in range(args.shards):
            port = free_port()
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
            procs.append(
                subprocess.Popen(  # noqa: ASYNC220 - only spawns; stopped from finally
                    [*command, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
                )
            )
            await wait_for_port(port, procs[-1], deadline)
            urls.append(f"redis://127.0.0.1:{port}/0")
        broker = ",".join(urls)
        servers: list[tuple[int, subprocess.Popen[bytes]]] = []
        for _ in range(args.processes):
            port = free_port()
            command = [sys.executable, "-m", "monument_ws", "run", "--port", str(port)]
            proc = subprocess.Popen(  # noqa: ASYNC220 - only spawns; stopped from finally
                [*command, "--broker", broker, *FLAGS],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(proc)
            servers.append((port, proc))
        for port, proc in servers:
            await wait_for_port(port, proc, deadline)

        channels = [f"load:{n}" for n in range(args.channels)]
        connector = aiohttp.TCPConnector(limit=0)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            Publisher(broker) as publisher,
        ):
            calls0, _ = await redis_stats(urls)
            rss0 = sum(rss_kib(proc.pid) for _, proc in servers)
            opened = []
            n = 0
            for c, channel in enumerate(channels):
                for _ in range(args.fanout):
                    at = c if args.placement == "channel" else n
                    port = servers[at % len(servers)][0]
                    n += 1
                    opened.append(sockets.open(session, f"ws://127.0.0.1:{port}/ws", channel))
                    if len(opened) == 100:
                        await asyncio.gather(*opened)
                        opened = []
            await asyncio.gather(*opened)
            calls1, redis_cpu1 = await redis_stats(urls)
            rss1 = sum(rss_kib(proc.pid) for _, proc in servers)
            subscriptions = args.channels * args.fanout

            cpu1 = sum(cpu_seconds(proc.pid) for _, proc in servers)
            start = loop.time()
            published = 0
            batch = max(1, args.rate // 100)  # every 10 ms
            while loop.time() - start < args.seconds and loop.time() < deadline:
                tick = loop.time()
                await asyncio.gather(
                    *(
                        publisher.publish(
                            channels[(published + i) % len(channels)], "tick", {"t": time.time()}
                        )
                        for i in range(batch)
                    )
                )
                published += batch
                await asyncio.sleep(max(0.0, 0.01 - (loop.time() - tick)))
            expected = published * args.fanout
            while sockets.deliveries < expected and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            wall = loop.time() - start
            cpu2 = sum(cpu_seconds(proc.pid) for _, proc in servers)
            calls2, redis_cpu2 = await redis_stats(urls)

        lat = sorted(sockets.latencies)
        return {
            "machine": f"{os.cpu_count()} cores",
            "shards": args.shards,
            "processes": args.processes,
            "sockets": subscriptions,
            "channels": args.channels,
            "fanout": args.fanout,
            "placement": args.placement,
            "published": published,
            "deliveries": sockets.deliveries,
            "expected": expected,
            "seconds": round(wall, 2),
            "publications_per_s": round(published / wall, 1),
            "deliveries_per_s": round(sockets.deliveries / wall, 1),
            "deliveries_per_server_cpu_s": round(sockets.deliveries / max(cpu2 - cpu1, 1e-9)),
            "server_cpu_s": round(cpu2 - cpu1, 2),
            "latency_ms_p50": round(1000 * statistics.median(lat), 2) if lat else None,
            "latency_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
            "redis_commands_per_subscription": round((calls1 - calls0) / subscriptions, 2),
            "redis_commands_per_publication": round((calls2 - calls1) / max(published, 1), 2),
            "redis_cpu_ms_per_publication": round(
                1000 * (redis_cpu2 - redis_cpu1) / max(published, 1), 4
            ),
            "wire_bytes_per_delivery": round(sockets.wire_bytes / max(sockets.deliveries, 1), 1),
            "server_rss_mib_per_process": round(rss1 / len(servers) / 1024, 1),
            "server_kib_per_socket": round((rss1 - rss0) / subscriptions, 1),
        }
    finally:
        for task in sockets.readers:
            task.cancel()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=10, help="subscribers per channel")
    parser.add_argument("--placement", choices=("spread", "channel"), default="spread")
    parser.add_argument("--rate", type=int, default=1000, help="publications per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--deadline", type=float, default=120.0, help="bound on the whole run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        result = asyncio.run(run(args))
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
