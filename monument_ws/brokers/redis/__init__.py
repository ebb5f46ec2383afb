"""The Redis broker: any number of processes and machines share channels, history, presence.

The only package that imports redis (``pip install 'monument-ws[redis]'``).
:class:`RedisBroker` is made of parts, one job per module:

* :mod:`.broker` -- :class:`RedisBroker`, the :class:`~monument_ws.brokers.base.Broker`
  that puts the parts together; broadcasts and control messages;
* :mod:`.connection` -- the command connection pool, Redis errors as ``Unavailable``;
* :mod:`.keys` -- every key and pub/sub channel name, under the ``prefix``;
* :mod:`.history` -- publishing with offsets (a Lua script) and reading history back;
* :mod:`.subscriber` -- the pub/sub reader, reconnecting after an outage and
  recovering what each channel missed;
* :mod:`.registry` -- which process holds which client, and sending to a client;
* :mod:`.presence` -- presence members with their expiry;
* :mod:`.queues` -- peer queues;
* :mod:`.sharded` -- :class:`ShardedRedisBroker`, one :class:`RedisBroker` per shard
  composed into one broker, :mod:`.ring` -- which shard holds a name, and :mod:`.probe` --
  which shards answer.

**One order everywhere.** A Lua script assigns the offset, appends to the
stream and publishes, atomically, so every subscriber on every process sees
one order, and every process writes the same bytes without decoding them.

**Outages.** A publish while Redis is unreachable raises
:class:`~monument_ws.protocol.errors.Unavailable` (never dropped silently). The reader
reconnects with capped backoff and jitter, resubscribes, then, before reading
live messages again, recovers each channel from history, or calls
:meth:`~monument_ws.brokers.base.Listener.resubscribe_all` where history cannot fill the gap.
Every step is logged (logger ``monument_ws.redis``). Local sockets keep being served throughout.
"""

from .broker import RedisBroker
from .sharded import ShardedRedisBroker

__all__ = ["RedisBroker", "ShardedRedisBroker"]
