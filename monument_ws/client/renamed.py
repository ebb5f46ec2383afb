"""The client's old option and attribute names, kept until 1.0 with a DeprecationWarning.

The outbox holds frames not yet sent and a peer queue holds messages to consume; before the
rename both were called "queue". Every warning points at the caller's line.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Final, Generic, TypeVar, cast, overload

T = TypeVar("T")

#: Old constructor keyword → its new name.
RENAMED_OPTIONS: Final = {
    "queue_limit": "outbox_limit",
    "queue_size": "peer_queue_size",
    "queue_ttl": "peer_queue_ttl",
}


def warn_renamed(old: str, new: str, stacklevel: int) -> None:
    """Warn that ``Client.old`` is now ``new``; ``stacklevel`` counts from the caller."""
    warnings.warn(
        f"Client.{old} is deprecated and will be removed in 1.0; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def renamed_options(
    renamed: Mapping[str, Any], outbox_limit: int, peer_queue_size: int, peer_queue_ttl: float
) -> tuple[int, int, float]:
    """The three renamed options with the old names in ``renamed`` applied: an old name wins
    over its new one, and each warns at the constructor's caller. An unknown keyword is a
    TypeError, as for any function."""
    chosen: dict[str, Any] = {
        "outbox_limit": outbox_limit,
        "peer_queue_size": peer_queue_size,
        "peer_queue_ttl": peer_queue_ttl,
    }
    for old, value in renamed.items():
        if old not in RENAMED_OPTIONS:
            raise TypeError(f"Client() got an unexpected keyword argument {old!r}")
        warn_renamed(old, RENAMED_OPTIONS[old], stacklevel=3)
        chosen[RENAMED_OPTIONS[old]] = value
    return chosen["outbox_limit"], chosen["peer_queue_size"], chosen["peer_queue_ttl"]


class Renamed(Generic[T]):
    """The old name of a Client attribute: it reads and sets the attribute ``new``, with a
    DeprecationWarning."""

    def __init__(self, new: str) -> None:
        self._new = new
        self._old = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._old = name

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Renamed[T]: ...

    @overload
    def __get__(self, client: object, owner: type[Any]) -> T: ...

    def __get__(self, client: object | None, owner: type[Any]) -> T | Renamed[T]:
        if client is None:
            return self
        warn_renamed(self._old, self._new, stacklevel=2)
        return cast(T, getattr(client, self._new))

    def __set__(self, client: object, value: T) -> None:
        warn_renamed(self._old, self._new, stacklevel=2)
        setattr(client, self._new, value)
