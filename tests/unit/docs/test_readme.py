"""The README documents every setting, and CI runs exactly the README's test command."""

from __future__ import annotations

from pathlib import Path

from ragstream.config import Settings

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table() -> None:
    table = [line for line in README.splitlines() if line.startswith("| `RAGSTREAM_")]
    documented = {line.split("`")[1] for line in table}
    expected = {f"RAGSTREAM_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented == set(), "add these settings to the README's configuration table"
    assert documented - expected == set(), "the README documents settings that do not exist"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./scripts/test" in ci
    assert "./scripts/test" in README and "./scripts/demo" in README
