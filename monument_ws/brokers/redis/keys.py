"""Every Redis key and pub/sub channel name of the broker, under one prefix.

The ``prefix`` setting namespaces them so several apps share one Redis:

* ``{p}:meta:{channel}`` -- hash ``epoch``, ``offset``;
* ``{p}:stream:{channel}`` -- a Redis Stream, entry id ``<offset>-0``, field
  ``f`` the encoded frame, ``x`` when it leaves history (ms since the epoch), ``n`` (only
  when set) the hex of the client id the publication excludes;
* pub/sub ``{p}:ch:{channel}`` -- one Redis channel per application channel,
  so a process only receives the channels its sockets subscribed to;
  payload ``<offset>:<frame>``, ``<offset>/<hex of the excluded client id>:<frame>``, or
  ``e:<frame>`` for join/leave;
* pub/sub ``{p}:broadcast:all`` (``<frame>``, or ``/<hex of the excluded client id>\\n<frame>``),
  ``{p}:node:{node}`` (``<client id>\\n<frame>``
  for a client of that process) and ``{p}:control:all`` (server-to-server
  orders such as kicks);
* ``{p}:idem:{channel}`` -- hash idempotency key → ``<offset>:<epoch>`` of the publication it
  named, and ``{p}:idemx:{channel}`` -- sorted set of the same keys scored by when each is
  forgotten (ms since the epoch); both expire a window after the channel's last keyed publish;
* ``{p}:client:{client_id}`` -- set of node ids holding that client (expires);
* ``{p}:presence:{channel}`` -- hash client id → info with its expiry;
* ``{p}:queue:{box}`` -- a peer queue: sorted set scored by sequence number,
  member ``<seq>:<expires ms>:<item>``; ``{p}:queueseq:{box}`` its last number.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """The names above for one ``prefix``."""

    prefix: str

    def _name(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    def meta(self, channel: str) -> str:
        return self._name("meta", channel)

    def stream(self, channel: str) -> str:
        return self._name("stream", channel)

    def idempotency(self, channel: str) -> str:
        return self._name("idem", channel)

    def idempotency_expiry(self, channel: str) -> str:
        return self._name("idemx", channel)

    def pubsub(self, channel: str) -> str:
        """The pub/sub channel of application channel ``channel``."""
        return self._name("ch", channel)

    @property
    def pubsub_prefix(self) -> str:
        """What every :meth:`pubsub` name starts with; the application channel follows."""
        return self.pubsub("")

    @property
    def broadcast(self) -> str:
        return self._name("broadcast", "all")

    def node(self, node: str) -> str:
        return self._name("node", node)

    @property
    def control(self) -> str:
        return self._name("control", "all")

    def client(self, client_id: str) -> str:
        return self._name("client", client_id)

    def presence(self, channel: str) -> str:
        return self._name("presence", channel)

    def queue(self, box: str) -> str:
        return self._name("queue", box)

    def queue_seq(self, box: str) -> str:
        return self._name("queueseq", box)
