"""Which shard a name lives on: rendezvous (highest random weight) hashing over shard URLs.

Every name (a channel, a client id, a peer-queue box) scores each shard with a hash of the
shard's URL and the name; the shard with the highest score holds it. Every process computes
the same answer from the same list of URLs, in any order, without talking to the others.

**What moves when the list changes.** Adding a shard moves exactly the names whose new
shard scores higher than their old one: about 1/N of them (N the new count), all onto the
new shard, and nothing moves between the old shards. Removing a shard moves only its own
names, spread over the rest. A shard is known by its URL as written (spaces around it
aside): writing the same server differently (another host name, a password) is a different
shard, so keep the URLs as they are when adding one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit


def score(shard: str, name: str) -> int:
    """The weight of ``shard`` for ``name``: 64 bits of BLAKE2b, the same in every process."""
    digest = hashlib.blake2b(f"{shard}\n{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def pick(shards: Sequence[str], name: str) -> int:
    """The index in ``shards`` of the shard that holds ``name`` (the highest score; ties,
    which 64 bits make vanishingly rare, go to the lower URL)."""
    return max(range(len(shards)), key=lambda i: (score(shards[i], name), shards[i]))


def redacted(url: str) -> str:
    """``url`` without its password, for logs and health reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))
