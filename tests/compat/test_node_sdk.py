"""MessageBird's official Node SDK (npm ``messagebird`` 4.0.1), unchanged, as the client.

The SDK and its lock file live in tests/compat/node; ``scripts/test`` runs ``npm ci``
there. Under CI the test fails rather than skips when Node or the SDK is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import Keys
from tests.servers import Server

pytestmark = pytest.mark.compat

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    ready = found and (NODE_DIR / "node_modules" / "messagebird").is_dir()
    if not ready:
        message = (
            "Node.js and `npm ci --prefix tests/compat/node` are needed (scripts/test does it)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert found
    return found


def _read(node: str, server: Server, key: str) -> dict[str, Any]:
    result = subprocess.run(
        [node, str(NODE_DIR / "balance.js"), str(server.port), key],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_prepaid_credits(node: str, server: Server, keys: Keys) -> None:
    assert _read(node, server, keys.prepaid_credits) == {
        "balance": {"payment": "prepaid", "type": "credits", "amount": 103}
    }


def test_postpaid_reports_zero(node: str, server: Server, keys: Keys) -> None:
    assert _read(node, server, keys.postpaid) == {
        "balance": {"payment": "postpaid", "type": "euros", "amount": 0}
    }


def test_currency_with_decimals(node: str, server: Server, keys: Keys) -> None:
    assert _read(node, server, keys.pounds_with_decimals) == {
        "balance": {"payment": "prepaid", "type": "pounds", "amount": 9.2}
    }


def test_test_key_reads_the_sandbox(node: str, server: Server, keys: Keys) -> None:
    assert _read(node, server, keys.test)["balance"]["amount"] == 7.5


@pytest.mark.parametrize("case", ["unknown", "revoked"])
def test_bad_keys_become_errors(node: str, server: Server, keys: Keys, case: str) -> None:
    error = _read(node, server, getattr(keys, case))["error"]
    assert error["statusCode"] == 401
    assert error["errors"] == [
        {
            "code": 2,
            "parameter": "access_key",
            "description": "Request not allowed (incorrect access_key)",
        }
    ]
    assert error["message"] == (
        "api error(s): Request not allowed (incorrect access_key) (code: 2, parameter: access_key)"
    )
