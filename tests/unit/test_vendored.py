"""The vendored chart library is the one VENDORED.md names, byte for byte."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import birdbalance.http

HTTP = Path(birdbalance.http.__file__).parent
VENDOR = HTTP / "static" / "vendor"


def test_vendored_files_match_their_recorded_digests() -> None:
    rows = re.findall(
        r"^\| (\S+) \| .*? \| ([0-9a-f]{64}) \|$", (VENDOR / "VENDORED.md").read_text(), re.M
    )
    assert {name for name, _ in rows} == {"uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in rows:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert "MIT" in (VENDOR / "uPlot.LICENSE").read_text()


def test_every_static_file_a_template_names_exists() -> None:
    for template in (HTTP / "templates").glob("*.html"):
        for path in re.findall(r'"/dashboard/static/([^"]+)"', template.read_text()):
            assert (HTTP / "static" / path).is_file(), (template.name, path)
