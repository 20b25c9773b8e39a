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


def test_the_two_commands_are_commands_as_written() -> None:
    """The README's first two shell blocks, copied as they are: set-up, then the demo; set-up, then
    pytest — and the demo's arguments are ones the command line takes."""
    section = README.split("## The two commands", 1)[1]
    run, test = re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)[:2]
    setup = "python3 -m venv .venv && .venv/bin/pip install -q -e "
    assert run.startswith(setup)
    assert test.startswith(setup)
    assert test.endswith("&& .venv/bin/pytest")
    args = run.rsplit("&& .venv/bin/vtrans ", 1)[1].split()
    from vtrans.cli.commands import cli

    name, *rest = args
    assert name == "demo"
    with cli.make_context("vtrans", [name]) as ctx:
        demo = cli.get_command(ctx, name)
        assert demo is not None
        demo.make_context(name, rest, parent=ctx)  # a UsageError for arguments it does not take
