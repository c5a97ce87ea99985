"""The README is a front door to docs/: it leads with the two commands CI runs, stays short, and every
relative link of it and of docs/ resolves; the configuration page documents every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragstream.config import Settings
from ragstream.config.reference import render

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: Generated from the settings' field descriptions by its own tool, not written by hand.
CONFIGURATION = ROOT / "docs" / "configuration.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _configuration() -> str:
    return CONFIGURATION.read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    table = [line for line in _configuration().splitlines() if line.startswith("| `RAGSTREAM_")]
    documented = {line.split("`")[1] for line in table}
    expected = {f"RAGSTREAM_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented == set(), "add these settings to docs/configuration.md's table"
    assert documented - expected == set(), "docs/configuration.md documents settings that do not exist"


def test_the_configuration_page_is_what_the_settings_make_now() -> None:
    assert _configuration() == render(), "run: python -m ragstream.config > docs/configuration.md"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./scripts/test" in ci
    assert "./scripts/test" in README and "./scripts/demo" in README


def test_the_readme_leads_with_the_two_commands() -> None:
    first_section = README.split("\n## ", 2)[1]
    assert first_section.startswith("The two commands\n"), "the first section is the two commands"
    commands = first_section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[0] for line in commands[:2]] == ["./scripts/demo", "./scripts/test"]


def test_the_readme_is_a_front_door() -> None:
    assert len(README.splitlines()) <= 250, "move the detail to a page of docs/"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page (headings in code blocks are not headings)."""
    anchors, fence = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:: not a file of the repository
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and anchor not in _anchors(resolved)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert _broken_links(page) == []


def test_the_link_check_sees_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A heading: here\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading-here) [web](https://example.com)\n"
        "[gone](missing.md) [no anchor](there.md#nowhere)\n",
        encoding="utf-8",
    )
    assert _broken_links(page) == ["missing.md", "there.md#nowhere"]
