"""The README stays a short user's guide, and every relative link of the docs points at a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 260

# [text](target) and ![alt](target), with an optional "title"; and reference definitions "[label]: target"
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
FENCED_CODE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def _pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def relative_links(markdown: str) -> list[str]:
    """The link targets of a Markdown text that point into the repository (no URLs, no in-page anchors)."""
    prose = INLINE_CODE.sub("", FENCED_CODE.sub("", markdown))
    targets = INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)
    return [t for t in targets if not EXTERNAL.match(t) and not t.startswith("#")]


def test_link_finder_sees_links_and_skips_urls_anchors_and_code() -> None:
    """Guards the link test: a finder that found nothing would pass it vacuously."""
    text = (
        'See [a](docs/a.md#part), ![plot](../bench/x.png "title") and [web](https://example.org).\n'
        "[b]: docs/b.md\n[anchor](#top) `[code](not/a/link.md)`\n```bash\necho [x](in/code.md)\n```\n"
    )
    assert relative_links(text) == ["docs/a.md#part", "../bench/x.png", "docs/b.md"]


def test_readme_is_a_short_guide() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move investigations to a docs/ page"
    )


def test_readme_names_the_two_setup_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make train" in text and "make test" in text


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_in_the_repository(page: Path) -> None:
    links = relative_links(page.read_text(encoding="utf-8"))
    broken = []
    for link in links:
        target = (page.parent / link.split("#", 1)[0]).resolve()
        if not target.is_file() or not target.is_relative_to(ROOT):
            broken.append(link)
    assert broken == [], f"{page.relative_to(ROOT)}: links to no file of the repository: {broken}"


def test_readme_links_every_docs_page_it_is_built_from() -> None:
    """The pages that hold the README's former sections are reachable from it."""
    links = {link.split("#", 1)[0] for link in relative_links(README.read_text(encoding="utf-8"))}
    pages = ("precision", "performance", "third_stage", "full_data", "reliability", "study", "development")
    missing = [f"docs/{name}.md" for name in pages if f"docs/{name}.md" not in links]
    assert missing == []
