"""One client connection, from the upgraded socket to the handler and back.

``socket`` is the shell a handler sees; ``sender`` the one path out (bounded);
``reader`` and ``reads`` the path in; ``requests``, ``limits`` and ``calls`` the
I/O-free bookkeeping of requests, rate limits and server-to-client calls;
``router``, ``middleware`` and ``dispatch`` what runs an admitted request;
``commands`` the registry of ``ws:`` commands; ``auth`` who the client is;
``stats`` the counters the hot path keeps. Imports only ``protocol``, ``config``,
``bus`` and ``signals`` from the rest of the package.
"""
