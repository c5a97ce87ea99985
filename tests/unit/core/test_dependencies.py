"""The requirements say what the code needs: every requirement of pyproject.toml (core and every extra)
is satisfied by the version constraints.txt pins, the one every image, venv and CI run installs; so a
lower bound can never admit less than the tested pin while claiming to, nor a pin drift outside it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        found += [Requirement(r) for r in extra if not r.startswith("ragstream[")]
    return found


def test_every_requirement_admits_the_pinned_version() -> None:
    pins = _pins()
    pinned = [r for r in _requirements() if canonicalize_name(r.name) in pins]
    assert len(pinned) > 30  # the file is read: nearly every requirement has its pin
    outside = [
        f"{req} (pinned {pins[canonicalize_name(req.name)]})"
        for req in pinned
        if not req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True)
    ]
    assert outside == []


def test_libraries_whose_newer_api_the_code_calls_have_that_as_their_lower_bound() -> None:
    # tracing.py calls langfuse's propagate_attributes and start_observation (v4 and later; tested on 5)
    bounds = {canonicalize_name(r.name): r.specifier for r in _requirements()}
    assert not bounds["langfuse"].contains("4.9") and bounds["langfuse"].contains("5.0.0")
