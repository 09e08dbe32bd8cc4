"""What the distribution says about itself is true: its licence, its Python, its types."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def test_the_license_file_is_the_license_the_metadata_names() -> None:
    project = _project()
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "WITHOUT WARRANTY OF ANY KIND" in text
    # The image builds the package from these files: the licence must be among them.
    assert re.search(r"^COPY .*\bLICENSE\b", (ROOT / "Dockerfile").read_text(), re.MULTILINE)


def test_classifiers_claim_only_what_is_tested() -> None:
    classifiers = _project()["classifiers"]
    assert isinstance(classifiers, list)
    versions = {c.rsplit(" :: ", 1)[1] for c in classifiers if re.search(r":: 3\.\d+$", c)}
    # CI runs the suite on this interpreter only; no other version is claimed.
    assert versions == {f"{sys.version_info.major}.{sys.version_info.minor}"} == {"3.11"}
    assert _project()["requires-python"] == ">=3.11"
    assert not [c for c in classifiers if c.startswith("License ::")], "PEP 639: the expression"
    if "Typing :: Typed" in classifiers:
        assert (ROOT / "src" / "birdbalance" / "py.typed").exists()
