"""The docs stand alone: every relative link points to a file and heading that exist, and no
doc or docstring sends the reader to a file outside this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
#: A Markdown file named anywhere (a link, a path, a mention in passing).
MARKDOWN_NAME = re.compile(r"[\w-]+\.md\b")
#: A relative path that climbs a folder: ``../CHANGELOG.md``, ``../../x``.
CLIMB = re.compile(r"(?:\.\./)+[\w.-]*")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.MULTILINE)}


def links() -> list[tuple[Path, str]]:
    found = []
    for page in PAGES:
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
        found += [(page, m.group(1)) for m in LINK.finditer(text)]
    return found


@pytest.mark.parametrize(
    ("page", "target"),
    [(p, t) for p, t in links() if not re.match(r"[a-z]+:", t)],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_a_relative_link_points_to_an_existing_file_and_heading(page: Path, target: str):
    path, _, anchor = target.partition("#")
    linked = (page.parent / path).resolve() if path else page
    assert linked.exists(), f"{page.name} links to {target}, which does not exist"
    if anchor:
        assert anchor in anchors(linked), f"{page.name} links to a missing heading: {target}"


def test_the_protocol_reference_is_linked_from_the_guide():
    assert any(t.startswith("protocol.md") for p, t in links() if p.name == "websockets.md")


def repository_markdown() -> set[str]:
    """The names of the Markdown files this repository holds (not those of tools it installs)."""
    return {
        path.name
        for path in ROOT.rglob("*.md")
        if not any(part.startswith(".") or part == "node_modules" for part in path.parts)
    }


def test_no_doc_or_docstring_points_outside_the_repository():
    """Every Markdown file a doc, docstring, page or template names is one of this repository's,
    and no relative path outside a code block climbs out of it: a reader can follow each one."""
    sources = [
        *PAGES,
        *(ROOT / "monument_ws").rglob("*.py"),
        *(ROOT / "monument_ws" / "static").glob("*.*s"),
        *(ROOT / "monument_ws" / "ops").glob("*.html"),
        *(ROOT / "monument_ws" / "cli" / "templates").glob("*.tmpl"),
        *(ROOT / "app_template").rglob("*.md"),
        *(ROOT / "app_template").rglob("*.py"),
    ]
    ours = repository_markdown()
    offenders = []
    for path in sources:
        text = path.read_text(errors="replace")
        offenders += [
            f"{path.relative_to(ROOT)} names {name}, which this repository does not hold"
            for name in MARKDOWN_NAME.findall(text)
            if name not in ours
        ]
        prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
        offenders += [
            f"{path.relative_to(ROOT)} points outside the repository: {climb}"
            for climb in CLIMB.findall(prose)
            if not (path.parent / climb).resolve().is_relative_to(ROOT)
        ]
    assert offenders == []


def test_the_outside_check_catches_a_file_that_is_not_here_and_a_climb_out():
    """The check above can fail: a name of no file here, and a path out of the repository."""
    assert "notes-kept-elsewhere.md" not in repository_markdown()
    assert MARKDOWN_NAME.findall("see notes-kept-elsewhere.md") == ["notes-kept-elsewhere.md"]
    climb = CLIMB.findall("as ../../elsewhere/notes says")[0]
    assert not (ROOT / "docs" / climb).resolve().is_relative_to(ROOT)
