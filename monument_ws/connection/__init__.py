"""One client connection, from the upgraded socket to the handler and back.

``socket`` is what a handler sees; ``inbound`` reads and routes its frames,
``admission`` decides which requests run, ``dispatch`` runs them (with
``router`` and ``middleware``); ``outbound`` and ``sender`` are the one bounded
way out. ``reader`` and ``reads`` tune the path in; ``requests``, ``limits`` and
``calls`` are the I/O-free bookkeeping of requests, rate limits and
server-to-client calls; ``commands`` the registry of ``ws:`` commands; ``auth``
who the client is; ``stats`` the counters the hot path keeps; ``eager`` starts a
request's task at once. Imports only ``protocol``, ``config``, ``bus`` and
``signals`` from the rest of the package.
"""
