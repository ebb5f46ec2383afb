"""Prometheus metrics: scraped over HTTP from a real server while real sockets make traffic."""

from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import monument_ws
from monument_ws.protocol.errors import Unavailable
from tests.conftest import Connect, eventually

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Any, path: str = "/metrics") -> Samples:
    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_when_traffic_flows(make_server, connect: Connect):
    """Sockets, frames by kind, errors by code, handler latency, channels, presence, publishes,
    queue drops and slow consumers all move between two scrapes of real traffic."""
    client, ws = await make_server(
        metrics=True, send_buffer_frames=10, channels={"room:*": {"presence": True}}
    )

    @ws.handler("echo")
    async def echo(message, socket):
        return message.data

    @ws.handler("flood")
    async def flood(message, socket):
        for _ in range(400):  # a client that does not read: its queue overflows
            if not socket.send_nowait("item", "x" * 50_000):
                break

    before = await scrape(client)
    assert value(before, "monument_ws_sockets_open") == 0
    peer = await connect(client)
    await peer.request({"event": "echo", "id": 1, "data": "hi"})
    await peer.send("not json")
    assert (await peer.recv())["error"]["code"] == "bad_json"
    await peer.request({"event": "ws:subscribe", "id": 2, "data": {"channel": "news"}})
    await peer.request({"event": "ws:subscribe", "id": 3, "data": {"channel": "room:1"}})
    await ws.publish("news", "headline", "extra!")
    assert (await peer.recv())["data"] == "extra!"

    after = await scrape(client)
    assert value(after, "monument_ws_sockets_open") == 1
    assert value(after, "monument_ws_connections_total") == 1
    for kind, grew_by in (("event", 1), ("command", 2), ("invalid", 1)):
        grown = value(after, "monument_ws_frames_received_total", kind=kind) - value(
            before, "monument_ws_frames_received_total", kind=kind
        )
        assert grown == grew_by, kind
    assert value(after, "monument_ws_frames_sent_total", kind="publication") == 1
    assert value(after, "monument_ws_frames_sent_total", kind="error") == 1
    assert value(after, "monument_ws_frames_sent_total", kind="reply") == 3
    assert value(after, "monument_ws_errors_total", code="bad_json") == 1
    assert value(after, "monument_ws_errors_total", code="internal") == 0
    assert value(after, "monument_ws_request_duration_seconds_count", route="handler") == 1
    assert value(after, "monument_ws_request_duration_seconds_count", route="command") == 2
    assert (
        value(after, "monument_ws_request_duration_seconds_bucket", route="handler", le="+Inf") == 1
    )
    assert value(after, "monument_ws_channels", namespace="default") == 1
    assert value(after, "monument_ws_channels", namespace="room:*") == 1
    assert value(after, "monument_ws_channel_subscribers", namespace="default") == 1
    assert value(after, "monument_ws_presence_members", namespace="room:*") == 1
    assert value(after, "monument_ws_broker_publish_duration_seconds_count") == 1
    assert value(after, "monument_ws_broker_up") == 1
    assert value(after, "monument_ws_broker_reconnects_total") == 0

    await peer.send({"event": "flood"})
    assert await peer.closed() == 4008
    await eventually(lambda: len(ws.hub) == 0, "the slow consumer gone")
    last = await scrape(client)
    assert value(last, "monument_ws_slow_consumers_total") == 1
    assert value(last, "monument_ws_send_queue_dropped_total") >= 10
    assert value(last, "monument_ws_sockets_open") == 0
    assert value(last, "monument_ws_channels", namespace="default") == 0


async def test_labels_never_carry_client_chosen_names(make_server, connect: Connect):
    """Unknown events and channel names a client makes up never appear in the scrape."""
    client, _ = await make_server(metrics=True)
    peer = await connect(client)
    for i in range(20):
        await peer.request({"event": f"made-up-{i}", "id": i})
        await peer.request(
            {"event": "ws:subscribe", "id": 100 + i, "data": {"channel": f"secret-{i}"}}
        )
    text = await (await client.get("/metrics")).text()
    assert "made-up" not in text
    assert "secret-" not in text
    samples = await scrape(client)
    assert value(samples, "monument_ws_errors_total", code="not_found") == 20
    assert value(samples, "monument_ws_channels", namespace="default") == 20


async def test_metrics_are_off_by_default_and_per_application(aiohttp_client, bus):
    """No route without ``metrics``; two apps in one process keep separate registries,
    and nothing is added to prometheus_client's global registry."""
    plain = web.Application()
    monument_ws.setup(plain, websocket=True, bus=bus)
    assert (await (await aiohttp_client(plain)).get("/metrics")).status == 404

    global_names = set(REGISTRY._names_to_collectors)
    apps = []
    for path in ("/metrics", "/other-metrics"):
        app = web.Application()
        plugin = monument_ws.setup(app, websocket=True, metrics=True, metrics_path=path, bus=bus)
        apps.append((await aiohttp_client(app), plugin, path))
    (first, _, first_path), (second, _, second_path) = apps
    async with first.ws_connect("/ws") as ws:
        await ws.receive_json()
        assert value(await scrape(first, first_path), "monument_ws_sockets_open") == 1
        assert value(await scrape(second, second_path), "monument_ws_sockets_open") == 0
    assert set(REGISTRY._names_to_collectors) == global_names


async def test_docs_operating_example_serves_metrics_health_and_admin(aiohttp_client):
    """The Operating example of docs/websockets.md serves metrics, both health checks and the
    admin page."""
    from tests.test_docs import app_example, serve

    client = await serve(aiohttp_client, app_example("admin_token="))
    async with client.ws_connect("/ws") as ws:
        await ws.receive_json()
        assert value(await scrape(client), "monument_ws_sockets_open") == 1
    assert (await client.get("/health/live")).status == 200
    assert (await client.get("/health/ready")).status == 200
    assert (await client.get("/_monument/admin")).status == 200


async def test_refusals_publish_errors_and_the_drain_are_counted(
    make_server, connect: Connect, monkeypatch
):
    """A foreign Origin is counted under ``refused``, a publish the broker refuses under
    ``broker_publish_errors``, and a graceful shutdown shows in ``draining`` and ``drained``."""
    client, ws = await make_server(metrics=True, drain_period=0, drain_grace=1)
    await connect(client)
    foreign = await client.get(
        "/ws",
        headers={"Upgrade": "websocket", "Connection": "Upgrade", "Origin": "https://evil.test"},
    )
    assert foreign.status == 403

    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise Unavailable("the broker is unavailable")

    monkeypatch.setattr(ws.broker, "publish", refuse)
    with pytest.raises(Unavailable):
        await ws.publish("news", "headline", "lost")

    before = await scrape(client)
    assert value(before, "monument_ws_refused_total", reason="origin") == 1
    assert value(before, "monument_ws_broker_publish_errors_total") == 1
    assert value(before, "monument_ws_draining") == 0
    await ws.on_shutdown(client.app)
    after = await scrape(client)
    assert value(after, "monument_ws_draining") == 1
    assert value(after, "monument_ws_drained_total") == 1


async def test_live_values_gauge(make_server, connect: Connect, bus):
    """monument_ws_live_values counts the watches of live data values, and drops on close."""
    bus.on("data:get:clock", lambda event, **_: 0, live=True)
    client, ws = await make_server(metrics=True)
    peers = [await connect(client) for _ in range(3)]
    for peer in peers:
        await peer.request({"event": "data:get:clock", "id": 1})
    assert value(await scrape(client), "monument_ws_live_values") == 3
    for peer in peers:
        await peer.close()
    await eventually(lambda: len(ws.live) == 0, "the watches forgotten")
    assert value(await scrape(client), "monument_ws_live_values") == 0
