"""Browsing a channel's history window a page at a time: ``ws:history`` and the server API's
``history()``.

**Pages by offset.** A page is asked for by offset: the latest publications, those ``before``
an offset (going back) or those ``after`` one (going forward), at most ``limit`` (1 to
:data:`MAX_LIMIT`, :data:`DEFAULT_LIMIT` when not given), always listed oldest first. Offsets
never change within an epoch, so the next page is asked for with the first offset of this one
(``before``) or its last (``after``): no publication is on two pages and none is skipped while
the window still holds it. When the window moves between two pages (new publications, old ones
dropped by size or age), later pages show the window as it is then: going back ends sooner
(``more`` false), and a page ``after`` an offset that was dropped starts at the oldest one kept
(its offsets show the gap). ``epoch``, when the caller gives the one its earlier pages had,
guards against a history that was lost meanwhile: a different current epoch answers an empty
page with ``more`` false and the new epoch.

**Who sees what.** A publication whose sender was left out (``Publication.exclude``) is not
shown to that client id, as its recovery does not replay it; everyone else, and the server,
see it. Such a page may hold fewer than ``limit`` publications: only ``more`` says whether
there are more.

**The source of a channel's history** (:meth:`HistoryPages.source`) is the broker's window,
except for a channel whose namespace persists it: the store (:mod:`monument_ws.channels.durable`)
answers its pages, through the same :meth:`HistorySource.history_page` the broker has, from
everything it still keeps. Whatever the source,
the reply and the checks before it (the namespace's subscribe policy, for a socket) stay
the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

import orjson

from ..brokers.base import Broker, HistoryPage, Publication

#: Publications per page when the caller names no ``limit``.
DEFAULT_LIMIT: Final = 50
#: The most publications one page may ask for; a larger ``limit`` is refused (bad_frame for a
#: socket, ValueError for the server API), so one request never reads a whole large window.
MAX_LIMIT: Final = 100
#: The largest offset a client may name (a signed 64-bit integer, as the store and Redis keep
#: them): a larger one is refused before it reaches either.
MAX_OFFSET: Final = 2**63 - 1


class HistorySource(Protocol):
    """Where a channel's pages come from: the broker (its window), or a store that takes
    over some namespaces. Same contract as :meth:`Broker.history_page`."""

    async def history_page(
        self, channel: str, *, before: int | None = None, after: int | None = None, limit: int
    ) -> HistoryPage: ...


def check_page(before: object, after: object, limit: object, epoch: object) -> str | None:
    """Why these page arguments are wrong, or None when they are right."""
    for name, value in (("before", before), ("after", after)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{name!r} must be an offset (an integer >= 0)"
        if isinstance(value, int) and not 0 <= value <= MAX_OFFSET:
            return f"{name!r} must be an offset (an integer from 0 to 2**63 - 1)"
    if before is not None and after is not None:
        return "give 'before' or 'after', not both"
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return f"'limit' must be an integer from 1 to {MAX_LIMIT}"
    if epoch is not None and not isinstance(epoch, str):
        return "'epoch' must be the string an earlier page gave"
    return None


class HistoryPages:
    """Answers page requests for every channel from its history source."""

    def __init__(
        self, broker: Broker, route: Callable[[str], HistorySource | None] | None = None
    ) -> None:
        self._broker = broker
        #: the source that keeps a channel instead of the broker (None: the broker's window)
        self._route = route

    def source(self, channel: str) -> HistorySource:
        """Where ``channel``'s history is read: the source ``route`` names for it, else the
        broker."""
        found = self._route(channel) if self._route is not None else None
        return self._broker if found is None else found

    async def page(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = DEFAULT_LIMIT,
        epoch: str | None = None,
        reader: str | None = None,
    ) -> dict[str, Any]:
        """One page as the wire has it: ``{"channel", "epoch", "offset", "publications":
        [{"event", "data", "offset"}, …], "more"}``. Arguments are checked already
        (:func:`check_page`); ``reader`` is the client id asking (None: the server), whose
        excluded publications are left out."""
        found = await self.source(channel).history_page(
            channel, before=before, after=after, limit=limit
        )
        same_epoch = epoch is None or epoch == found.epoch
        shown = [p for p in found.publications if not _excludes(p, reader)] if same_epoch else []
        return {
            "channel": channel,
            "epoch": found.epoch,
            "offset": found.offset,
            "publications": [_entry(p) for p in shown],
            "more": found.more and same_epoch,
        }


def _excludes(publication: Publication, reader: str | None) -> bool:
    return publication.exclude is not None and publication.exclude == reader


def _entry(publication: Publication) -> dict[str, Any]:
    """A publication as a page lists it: its frame without the channel (the reply has it)."""
    frame = orjson.loads(publication.frame)
    return {"event": frame["event"], "data": frame.get("data"), "offset": publication.offset}
