"""The aiohttp plugin: the per-application instance and the server-side API.

``plugin`` is the instance ``monument_ws.setup(app)`` returns (a facade over the rest); ``api``
the broker-facing server API it shares with ``publisher`` (publishing from outside a server);
``channel_commands`` the ``ws:`` channel commands; ``credentials`` sessions, ``ws:auth`` and the
credential watcher; ``upgrade`` the upgrade checks and each socket's life; ``static`` the
browser client's files; ``plugs`` the hot-reloaded plugs folder; ``refusals`` and ``logs`` what
the server reports. ``setup()`` itself lives in :mod:`monument_ws.mount`, above the ops endpoints.
"""
