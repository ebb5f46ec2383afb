"""The aiohttp plugin: what ``setup(app)`` mounts and the server-side API.

``plugin`` is the per-application instance; ``plugs`` the hot-reloaded plugs
folder; ``publisher`` publishing from outside a server; ``logs`` the structured
log lines.
"""
