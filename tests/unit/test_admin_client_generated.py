"""The admin client's operations are the OpenAPI document's, typed as it says.

- The committed modules are exactly what ``scripts/generate-admin-client`` writes from
  the served document (a new operation or parameter cannot be forgotten).
- Every ``/v1`` operation has a method on both clients, with the document's path
  parameters, body fields and query parameters, and ``idempotency_key`` on every write.
- ``mypy --strict`` accepts a program that reads typed answers, and refuses one that
  passes a float amount, an unknown mode or a misspelt field.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from birdbalance import AdminClient, AsyncAdminClient
from birdbalance.http.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[2]


def _v1_operations() -> list[tuple[str, str, dict[str, object]]]:
    return [
        (path, method, operation)
        for path, operations in openapi_document()["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    ]


def _method_name(operation_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


def test_the_committed_operations_are_what_the_generator_writes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate-admin-client"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("client", [AdminClient, AsyncAdminClient])
def test_every_v1_operation_is_a_method_with_the_documents_parameters(client: type) -> None:
    operations = _v1_operations()
    assert len(operations) == 41
    for _path, method, operation in operations:
        name = _method_name(str(operation["operationId"]))
        fn = getattr(client, name)
        assert inspect.iscoroutinefunction(fn) == (client is AsyncAdminClient), name
        signature = inspect.signature(fn)
        parameters = signature.parameters
        params = operation.get("parameters", [])
        assert isinstance(params, list)
        positional = [p["name"] for p in params if p["in"] == "path"]
        named = [n for n, p in parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
        # Bulk posting's operations are its one positional argument (written by hand).
        wanted_positional = ["operations"] if name == "post_bulk" else positional
        assert named == ["self", *wanted_positional], name
        keywords = {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
        wanted = {p["name"].replace("from", "from_") for p in params if p["in"] == "query"}
        wanted -= {"format"}  # the CSV renderings: JSON is what the methods answer
        body = operation.get("requestBody")
        if body is not None and name != "post_bulk":
            reference = body["content"]["application/json"]["schema"]["$ref"]  # type: ignore[index]
            schema_name = reference.split("/")[-1]
            schema = openapi_document()["components"]["schemas"][schema_name]
            fields = set(schema["properties"])
            wanted |= {"from_" if f == "from" else f for f in fields}
            for field in schema.get("required", []):
                arg = "from_" if field == "from" else field
                assert parameters[arg].default is inspect.Parameter.empty, (name, arg)
        if method != "get":
            wanted.add("idempotency_key")
            assert parameters["idempotency_key"].default is None
        if name == "post_bulk":
            wanted = {"dry_run", "idempotency_key"}
        assert keywords == wanted, (name, keywords ^ wanted)


GOOD = """
from decimal import Decimal
from birdbalance import AdminClient, AsyncAdminClient


def use(admin: AdminClient) -> str:
    account = admin.create_account(payment="prepaid", type="euros", name="x")
    posted = admin.create_charge(account.id, amount=Decimal("0.0075"), mode="test")
    alert = admin.create_alert(account.id, below="5", recharge={"amount": "10"})
    page = admin.list_entries(account.id, kind="charge", limit=10)
    available: str = admin.get_account(account.id).balances.live.available
    after: str = posted.entry.balance_after
    seq: int = posted.entry.seq
    more: bool = page.has_more
    failures: int = 0 if alert.recharge is None else alert.recharge.failures
    return f"{available} {after} {seq} {more} {failures}"


async def use_async(admin: AsyncAdminClient) -> str:
    account = await admin.get_account("acc_x")
    return account.balances.test.amount
"""

BAD = {
    "a float amount": 'admin.create_charge("acc_x", amount=0.1)',
    "an unknown mode": 'admin.create_topup("acc_x", amount="1", mode="prod")',
    "a misspelt field": 'admin.create_topup("acc_x", amont="1")',
    "a missing required field": 'admin.create_refund("acc_x", amount="1")',
    "a bad period": ('admin.set_spending_limit("acc_x", amount="1", period="week")'),
    "an answer read wrongly": 'x: int = admin.get_account("acc_x").balances.live.amount',
}


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    program = tmp_path / "program.py"
    program.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(program)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_mypy_accepts_typed_use_and_refuses_each_mistake(tmp_path: Path) -> None:
    bad = "\n".join(
        f"def bad_{i}(admin: AdminClient) -> None:\n    {line}  # {what}\n"
        for i, (what, line) in enumerate(BAD.items())
    )
    done = _mypy(tmp_path, GOOD + "\n\n" + bad)
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    # Each mistake is refused on its own line, and nothing in the typed use is.
    lines = (GOOD + "\n\n" + bad).splitlines()
    flagged = {lines[int(e.split(":")[1]) - 1].split("# ")[-1] for e in errors}
    assert flagged == set(BAD), done.stdout


def test_the_client_guide_lists_every_operation() -> None:
    guide = (ROOT / "docs" / "client.md").read_text()
    for path, method, operation in _v1_operations():
        name = _method_name(str(operation["operationId"]))
        name = "bulk" if name == "post_bulk" else name
        assert f"| `{name}` | `{method.upper()} {path}` |" in guide, name
