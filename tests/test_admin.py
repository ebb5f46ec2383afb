"""The admin page and its socket: off by default, behind a token, live numbers over a socket."""

import time
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

import monument_ws
from tests.conftest import DEADLINE, Connect, eventually

ADMIN = "/_monument/admin"


async def admin_socket(client: Any, token: str) -> aiohttp.ClientWebSocketResponse:
    ws: aiohttp.ClientWebSocketResponse = await client.ws_connect(f"{ADMIN}/socket")
    await ws.send_json({"token": token})
    return ws


async def snapshot(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """Ask for a fresh snapshot and return it (skipping ones made before the request)."""
    asked = time.time()
    await ws.send_json({"event": "admin:refresh"})
    while True:
        frame = await ws.receive_json(timeout=DEADLINE)
        if frame["event"] == "admin:snapshot" and frame["data"]["time"] >= asked:
            return dict(frame["data"])


async def test_admin_is_off_by_default_and_refuses_a_wrong_token(make_server, aiohttp_client, bus):
    """No route without admin_token; a wrong token or a non-JSON first frame closes with 4401."""
    plain = web.Application()
    monument_ws.setup(plain, websocket=True, bus=bus)
    assert (await (await aiohttp_client(plain)).get(ADMIN)).status == 404

    client, _ = await make_server(admin_token="s3cret")
    page = await client.get(ADMIN)
    assert page.status == 200
    html = await page.text()
    assert "s3cret" not in html
    assert 'id="sockets-open"' in html
    for first in ('{"token": "guess"}', "not json", '["s3cret"]'):
        ws = await client.ws_connect(f"{ADMIN}/socket")
        await ws.send_str(first)
        msg = await ws.receive(timeout=DEADLINE)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4401, first
        await ws.close()


async def test_admin_page_is_the_packaged_file(make_server):
    """GET <admin_path> serves monument_ws/ops/admin.html byte for byte, as UTF-8 HTML."""
    client, _ = await make_server(admin_token="s3cret")
    page = await client.get(ADMIN)
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    packaged = resources.files("monument_ws.ops").joinpath("admin.html").read_bytes()
    assert await page.read() == packaged
    assert b"<title>monument_ws admin</title>" in packaged


async def test_admin_socket_shows_live_sockets_channels_presence_and_errors(
    make_server, connect: Connect
):
    """The snapshot pushed over the admin socket follows real sockets as they come and go."""
    client, ws = await make_server(admin_token="s3cret", channels={"room:*": {"presence": True}})
    admin = await admin_socket(client, "s3cret")
    first = await snapshot(admin)
    assert first["totals"]["sockets"] == 0
    assert first["channels"] == []

    alice, bob = await connect(client), await connect(client)
    await alice.request({"event": "ws:subscribe", "id": 1, "data": {"channel": "room:1"}})
    await bob.request({"event": "ws:subscribe", "id": 1, "data": {"channel": "room:1"}})
    await bob.request({"event": "ws:subscribe", "id": 2, "data": {"channel": "news"}})
    await alice.send("{broken")
    assert (await alice.recv())["error"]["code"] == "bad_json"

    live = await snapshot(admin)
    assert live["totals"]["sockets"] == 2
    assert live["totals"]["channels"] == 2
    assert live["totals"]["subscribers"] == 3
    assert live["channels"] == [
        {"channel": "room:1", "namespace": "room:*", "subscribers": 2, "presence": 2},
        {"channel": "news", "namespace": "default", "subscribers": 1, "presence": None},
    ]
    assert {s["client_id"] for s in live["sockets"]} == {alice.client_id, bob.client_id}
    (error,) = live["errors"]
    assert error["code"] == "bad_json"
    assert error["socket_id"] in {s["id"] for s in live["sockets"]}
    assert live["broker"] == {"healthy": True, "reconnects": 0, "down": []}

    await bob.close()
    await eventually(lambda: len(ws.hub) == 1, "bob gone")
    later = await snapshot(admin)
    assert later["totals"]["sockets"] == 1
    assert later["channels"][0]["subscribers"] == 1
    await admin.close()


async def test_admin_pushes_snapshots_by_itself(make_server, connect: Connect):
    """Without being asked, the admin socket keeps pushing snapshots (the page updates itself)."""
    client, _ = await make_server(admin_token="t")
    admin = await admin_socket(client, "t")
    assert (await admin.receive_json(timeout=DEADLINE))["data"]["totals"]["sockets"] == 0
    await connect(client)
    while True:  # the next pushes, unrequested, show the new socket
        frame = await admin.receive_json(timeout=DEADLINE)
        if frame["data"]["totals"]["sockets"] == 1:
            break
    await admin.close()
