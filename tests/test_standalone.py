"""The repository stands alone: users clone only it, so nothing but CI may reach outside of it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"DESIGN(\.md)?\s*§|\.\./shared|DESIGN\.md")


def _tracked() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / line for line in listed.stdout.splitlines() if line]


def test_nothing_refers_to_documents_outside_the_repository() -> None:
    offenders = []
    for path in _tracked():
        if (path.name == "run" and path.parent.name == ".ci") or path == Path(__file__).resolve():
            continue  # CI alone may point test settings at files beside the checkout
        if not path.is_file() or path.is_symlink() or path.suffix in {".png", ".db"}:
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert not offenders


def test_the_architecture_page_exists_and_the_readme_links_it() -> None:
    page = REPO / "docs" / "architecture.md"
    assert page.is_file() and len(page.read_text()) > 2000
    assert "docs/architecture.md" in (REPO / "README.md").read_text()


def test_every_relative_link_in_the_docs_points_at_a_file_of_the_repository() -> None:
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken
