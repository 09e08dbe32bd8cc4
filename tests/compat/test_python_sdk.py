"""MessageBird's official Python SDK (PyPI ``messagebird`` 2.2.0), unchanged, as the client."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.compat

messagebird = pytest.importorskip("messagebird")
from messagebird.client import USER_AGENT, ErrorException  # noqa: E402
from messagebird.http_client import HttpClient  # noqa: E402

from tests.compat.conftest import Keys  # noqa: E402
from tests.servers import Server  # noqa: E402


def _balance(server: Server, key: str):  # type: ignore[no-untyped-def]
    client = messagebird.Client(key, http_client=HttpClient(server.url + "/", key, USER_AGENT))
    return client.balance()


def test_prepaid_credits(server: Server, keys: Keys) -> None:
    balance = _balance(server, keys.prepaid_credits)
    assert (balance.payment, balance.type, balance.amount) == ("prepaid", "credits", 103)


def test_postpaid_reports_zero(server: Server, keys: Keys) -> None:
    balance = _balance(server, keys.postpaid)
    assert (balance.payment, balance.type, balance.amount) == ("postpaid", "euros", 0)


def test_currency_with_decimals(server: Server, keys: Keys) -> None:
    balance = _balance(server, keys.pounds_with_decimals)
    assert (balance.payment, balance.type, balance.amount) == ("prepaid", "pounds", 9.2)


def test_test_key_reads_the_sandbox(server: Server, keys: Keys) -> None:
    assert _balance(server, keys.test).amount == 7.5


@pytest.mark.parametrize("case", ["unknown", "revoked"])
def test_bad_keys_raise_error_exception(server: Server, keys: Keys, case: str) -> None:
    with pytest.raises(ErrorException) as caught:
        _balance(server, getattr(keys, case))
    (error,) = caught.value.errors
    assert (error.code, error.parameter) == (2, "access_key")
    assert error.description == "Request not allowed (incorrect access_key)"
