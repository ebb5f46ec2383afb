"""The one registry of the server's ``ws:`` commands: what each command of the protocol runs.

:data:`monument_ws.protocol.COMMANDS` is the wire contract (the names, and
which need an ``id``); a :class:`Commands` registry says what the server does
for each, in two kinds:

* **inline** commands are answered by the socket's reader at once, in the
  order they arrive, without a request slot: they never suspend
  (``ws:ping``, ``ws:cancel``, and ``ws:result`` / ``ws:error`` answering a
  server call);
* **request** commands run like application requests (a slot, their own
  task, an answer per id): they may wait on the broker (``ws:subscribe``,
  ``ws:publish``, ``ws:auth``, …).

A registry must cover exactly the protocol's commands: building one that
misses a command, adds one the protocol does not know, or lists one under
both kinds raises ValueError, so a command can no longer be listed in one
place and forgotten in another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..protocol.frames import COMMANDS, Frame, Invalid

#: ``command(socket, frame)``, run by the reader; answers by itself, if at all. It returns
#: None, or the :class:`~monument_ws.protocol.frames.Invalid` refusal of a malformed
#: command (the reader answers it and counts it as a bad frame).
InlineCommand = Callable[[Any, Frame], "Invalid | None"]
#: ``await command(socket, frame)`` is the reply data (sent when the frame has an id).
RequestCommand = Callable[[Any, Frame], Awaitable[Any]]


class Commands:
    """Every ``ws:`` command of the protocol, by name, in its kind."""

    __slots__ = ("inline", "requests")

    def __init__(
        self, inline: Mapping[str, InlineCommand], requests: Mapping[str, RequestCommand]
    ) -> None:
        both = inline.keys() & requests.keys()
        missing = COMMANDS.keys() - inline.keys() - requests.keys()
        unknown = (inline.keys() | requests.keys()) - COMMANDS.keys()
        if both or missing or unknown:
            raise ValueError(
                "a command registry must give each protocol command exactly one handler: "
                f"listed twice {sorted(both)}, missing {sorted(missing)}, "
                f"not in the protocol {sorted(unknown)}"
            )
        self.inline = dict(inline)
        self.requests = dict(requests)
