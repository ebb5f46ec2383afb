"""The docs stand alone: every relative link points to a file and heading that exist, and no
doc or docstring sends the reader to a file outside this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
#: Files the project once pointed to that are not part of it.
OUTSIDE = ("design.md", "seed-notes", "../shared", "style.md")


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


def test_no_doc_or_docstring_points_outside_the_repository():
    sources = [
        *PAGES,
        *(ROOT / "monument_ws").rglob("*.py"),
        *(ROOT / "monument_ws" / "static").glob("*.*s"),
        *(ROOT / "monument_ws" / "ops").glob("*.html"),
        *(ROOT / "monument_ws" / "cli" / "templates").glob("*.tmpl"),
        *(ROOT / "app_template").rglob("*.md"),
        *(ROOT / "app_template").rglob("*.py"),
    ]
    offenders = [
        f"{path.relative_to(ROOT)}: {word}"
        for path in sources
        for word in OUTSIDE
        if word in path.read_text(errors="replace")
    ]
    assert offenders == []
