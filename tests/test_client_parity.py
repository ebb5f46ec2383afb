"""The two clients keep one API: every public method, property and option of the browser client
(read from its shipped TypeScript declarations) exists in the Python client under its
snake_case name, and the other way round -- except the deliberate differences that
docs/websockets.md lists in its table under "The two clients side by side", which this test
reads. A difference the table does not list fails, and so does a row for a name both clients
now have (the table must not go stale).
"""

from __future__ import annotations

import inspect
import re
from importlib import resources
from pathlib import Path

from monument_ws.client import Client

DOCS = Path(__file__).parent.parent / "docs" / "websockets.md"
TYPES = resources.files("monument_ws").joinpath("static", "monument.d.ts").read_text()
TABLE_HEADING = "### The two clients side by side"


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def block(text: str, opening: str) -> str:
    """The body of the declaration that starts with ``opening`` (up to its closing brace at
    column 0)."""
    start = text.index(opening)
    end = text.index("\n}", start)
    return text[start:end]


def js_api() -> set[str]:
    """The browser client's public members and constructor options, snake_cased."""
    body = block(TYPES, "export class Client {")
    names: set[str] = set()
    for line in body.splitlines():
        member = re.match(r"^    (?:get |set |static )?([A-Za-z_]\w*)[?]?[(:<]", line)
        if member and not line.lstrip().startswith("private "):
            names.add(member.group(1))
    options = block(TYPES, "export type ClientOptions = {").replace("\n};", "\n}")
    names |= set(re.findall(r"^    ([A-Za-z_]\w*)\?:", options, re.MULTILINE))
    return {snake(name) for name in names if not name.startswith("_")} - {"constructor"}


def python_api() -> set[str]:
    """The Python client's public attributes and constructor keywords."""
    names = {name for name in dir(Client) if not name.startswith("_")}
    names |= set(inspect.signature(Client.__init__).parameters) - {"self", "renamed"}
    return names


def documented() -> dict[str, str]:
    """The deliberate differences, ``{name: "Python" | "JavaScript"}``, from the docs' table."""
    text = DOCS.read_text()
    section = text[text.index(TABLE_HEADING) :]
    section = section[: section.index("\n#", 1)]
    rows: dict[str, str] = {}
    for match in re.finditer(r"^\| `([^`]+)` \| (Python|JavaScript) \|", section, re.MULTILINE):
        rows[snake(match.group(1))] = match.group(2)
    return rows


def differences(js: set[str], python: set[str]) -> dict[str, str]:
    only = {name: "Python" for name in python - js}
    only.update({name: "JavaScript" for name in js - python})
    return only


def test_the_clients_differ_only_where_the_docs_say() -> None:
    assert differences(js_api(), python_api()) == documented()


def test_a_method_in_one_client_alone_is_caught() -> None:
    """The comparison can fail: a name only one side has shows up as a difference."""
    js, python = js_api(), python_api()
    assert "publish" in js
    assert "publish" in python
    assert differences(js - {"publish"}, python)["publish"] == "Python"
    assert differences(js, python | {"new_thing"})["new_thing"] == "Python"
