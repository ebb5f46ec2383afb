"""Channels on one process, across processes through the broker.

``namespaces`` decides who may subscribe and publish; ``hub`` holds this
process's subscribers and fans publications out (encode once); ``presence`` keeps
member lists; ``peer_queues`` the messages waiting for a peer to consume them;
``kick`` the order that closes sockets on every process.
"""
