"""Every link of the README resolves: files it points to exist, anchors name one of its headings,
and it names no Markdown file the repository does not have."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
LINKS = re.findall(r"\]\(([^)\s]+)\)", README)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_has_links() -> None:
    assert any(link.startswith("#") for link in LINKS)
    assert any(not link.startswith(("#", "http")) for link in LINKS)


def test_every_anchor_names_a_heading() -> None:
    headings = {anchor(line.lstrip("#")) for line in README.splitlines() if line.startswith("#")}
    for link in LINKS:
        if link.startswith("#"):
            assert link[1:] in headings, link


def test_every_file_link_exists() -> None:
    for link in LINKS:
        if not link.startswith(("#", "http://", "https://")):
            assert (ROOT / link.split("#")[0]).exists(), link


def test_every_markdown_file_named_exists() -> None:
    for name in set(re.findall(r"\b[\w./-]+\.md\b", README)):
        assert (ROOT / name).exists(), f"the README names {name}, which is not in the repository"
