"""The lock files cover every dependency pyproject.toml names, at versions it allows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _locked(name: str) -> dict[str, str]:
    lock = tomllib.loads((ROOT / name).read_text())
    return {_norm(p["name"]): p["version"] for p in lock["packages"] if "directory" not in p}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted(dev: bool) -> list[Requirement]:
    """What a lock must hold: the client's dependencies and the server's (pylock.toml is
    what the service runs on), and for the dev lock the test tools too."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = list(project["dependencies"]) + extras["server"]
    if dev:
        names += extras["dev"]
    wanted = [Requirement(n) for n in names]
    # birdbalance[server] in the dev extra is the extra above, not a package to lock.
    return [r for r in wanted if r.name != "birdbalance"]


@pytest.mark.parametrize(("lock", "dev"), [("pylock.toml", False), ("pylock.dev.toml", True)])
def test_every_dependency_is_locked_within_its_range(lock: str, dev: bool) -> None:
    locked = _locked(lock)
    for requirement in _wanted(dev):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = locked.get(_norm(requirement.name))
        assert version is not None, f"{requirement.name} is not in {lock}: run scripts/lock"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} has {requirement.name} {version}, outside {requirement.specifier}:"
            " run scripts/lock"
        )


def test_every_locked_file_has_a_sha256() -> None:
    for name in ("pylock.toml", "pylock.dev.toml"):
        lock = tomllib.loads((ROOT / name).read_text())
        for package in lock["packages"]:
            if "directory" in package:
                continue
            files = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
            assert files and all(len(f["hashes"]["sha256"]) == 64 for f in files), package
