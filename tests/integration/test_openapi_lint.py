"""The served OpenAPI document, judged by two tools nobody here wrote: Redocly's CLI
(npm, its recommended rules, not one warning) and openapi-spec-validator (PyPI)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from tests.databases import in_ci
from tests.servers import Server

REDOCLY = Path(__file__).parents[1] / "tools" / "node_modules" / ".bin" / "redocly"


def _served(server: Server, folder: Path) -> Path:
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    path = folder / "openapi.json"
    path.write_text(json.dumps(document))
    return path


def test_redocly_finds_nothing_with_its_recommended_rules(server: Server, tmp_path: Path) -> None:
    if not REDOCLY.exists():
        if in_ci():
            pytest.fail("Redocly's CLI is missing: scripts/bootstrap dev installs it")
        pytest.skip("no Redocly CLI (run scripts/bootstrap dev)")
    linted = subprocess.run(
        [str(REDOCLY), "lint", "--extends", "recommended", "--format", "json",
         str(_served(server, tmp_path))],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    report = json.loads(linted.stdout)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, report["problems"]
    assert linted.returncode == 0


def test_openapi_spec_validator_accepts_it(server: Server, tmp_path: Path) -> None:
    validate(json.loads(_served(server, tmp_path).read_text()))
