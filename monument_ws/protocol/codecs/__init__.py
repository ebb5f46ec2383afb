"""Wire formats other than the native protocol, by name: what an endpoint speaks.

``setup(app, endpoints={"/ss": "serverless-sockets"})`` (or ``--endpoint /ss=serverless-sockets``)
serves a WebSocket route whose sockets speak the named format; :mod:`.base` states the contract
a format implements. Add one by writing its module here and naming it in :data:`CODECS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .base import Codec, CodecSession, Decoded, Reply
from .owlmeans import Owlmeans
from .serverless_sockets import ServerlessSockets
from .super_scaled_sockets import SuperScaledSockets

#: Every format an endpoint may name -> what makes its (shared) codec.
CODECS: Final[dict[str, Callable[[], Codec]]] = {
    ServerlessSockets.name: ServerlessSockets,
    Owlmeans.name: Owlmeans,
    SuperScaledSockets.name: SuperScaledSockets,
}


def codec(name: str) -> Codec:
    """A new codec of the format ``name``; ValueError naming the known ones otherwise."""
    make = CODECS.get(name)
    if make is None:
        raise ValueError(f"unknown wire format {name!r}; known: {', '.join(sorted(CODECS))}")
    return make()


__all__ = ["CODECS", "Codec", "CodecSession", "Decoded", "Reply", "codec"]
