"""Channels on one process, across processes through the broker.

``namespaces`` decides who may subscribe and publish; ``hub`` is what the plugin holds and the
broker calls, made of ``registry`` (this process's sockets by client id: send-to-client, kicks,
drain), ``recovery`` (channel subscriptions, and recovering what a subscriber missed) and
``fanout`` (publications written to every subscriber, encoded once); ``presence`` keeps member
lists; ``history`` pages through a channel's history window (``ws:history``) from the
channel's history source, the broker unless a store takes the namespace; ``peer_queues`` the messages waiting for a peer to consume them; ``kick`` the order that
closes sockets on every process.
"""
