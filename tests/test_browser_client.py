"""The plugin serves monument.js, the browser client, at client_path with validators and a version,
and its TypeScript declarations beside it."""

import re
from importlib import resources

from monument_ws import __version__

SCRIPT = resources.files("monument_ws").joinpath("static", "monument.js").read_bytes()
TYPES = resources.files("monument_ws").joinpath("static", "monument.d.ts").read_bytes()


async def test_client_js_is_served_with_cache_headers_and_version(make_server):
    """GET /monument_ws/client.js: the packaged module, an ETag, a short cache and the version."""
    client, _ = await make_server()
    response = await client.get("/monument_ws/client.js")
    assert response.status == 200
    assert response.content_type == "text/javascript"
    assert await response.read() == SCRIPT
    assert response.headers["Cache-Control"] == "public, max-age=300, must-revalidate"
    assert response.headers["X-Monument-WS-Version"] == __version__
    etag = response.headers["ETag"]
    again = await client.get("/monument_ws/client.js", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""


async def test_the_declarations_are_served_beside_the_script(make_server):
    """GET /monument_ws/client.d.ts: the packaged monument.d.ts with its own ETag and the same
    caching; the script's response names it in X-TypeScript-Types."""
    client, _ = await make_server()
    script = await client.get("/monument_ws/client.js")
    assert script.headers["X-TypeScript-Types"] == "/monument_ws/client.d.ts"
    response = await client.get("/monument_ws/client.d.ts")
    assert response.status == 200
    assert response.content_type == "application/typescript"
    body = await response.read()
    assert body == TYPES
    assert b"export class Client {" in body
    assert "X-TypeScript-Types" not in response.headers
    assert response.headers["ETag"] != script.headers["ETag"]
    again = await client.get(
        "/monument_ws/client.d.ts", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status == 304
    current = await client.get(f"/monument_ws/client.d.ts?v={__version__}")
    assert current.headers["Cache-Control"] == "public, max-age=31536000, immutable"


async def test_client_js_with_the_current_version_is_immutable(make_server):
    """?v=<version> may be cached for a year; another version gets the short cache."""
    client, _ = await make_server()
    current = await client.get(f"/monument_ws/client.js?v={__version__}")
    assert current.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    other = await client.get("/monument_ws/client.js?v=0.0.0-old")
    assert other.headers["Cache-Control"] == "public, max-age=300, must-revalidate"


def test_the_script_declares_the_package_version():
    """monument.js's VERSION constant is the Python package's version."""
    match = re.search(rb'export const VERSION = "([^"]+)";', SCRIPT)
    assert match is not None
    assert match.group(1).decode() == __version__


async def test_client_path_is_configurable_and_can_be_turned_off(make_server, aiohttp_client):
    """client_path moves the script; an empty client_path or websocket=false serves none."""
    from aiohttp import web

    import monument_ws

    client, _ = await make_server(client_path="/static/monument.js")
    assert (await client.get("/static/monument.js")).status == 200
    assert (await client.get("/static/monument.d.ts")).status == 200
    assert (await client.get("/monument_ws/client.js")).status == 404
    assert (await client.get("/monument_ws/client.d.ts")).status == 404
    for settings in ({"websocket": True, "client_path": ""}, {"websocket": False}):
        app = web.Application()
        monument_ws.setup(app, bus=monument_ws.EventBus("t"), **settings)
        off = await aiohttp_client(app)
        assert (await off.get("/monument_ws/client.js")).status == 404
        assert (await off.get("/monument_ws/client.d.ts")).status == 404
