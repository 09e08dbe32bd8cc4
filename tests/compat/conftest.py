from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.servers import Admin, Server


@dataclass(frozen=True)
class Keys:
    """One key per case the compatibility tests drive through each SDK."""

    prepaid_credits: str
    postpaid: str
    pounds_with_decimals: str
    unknown: str
    revoked: str
    test: str


@pytest.fixture(scope="session")
def keys(server: Server, admin: Admin) -> Iterator[Keys]:
    credits = admin.account("prepaid", "credits")
    admin.topup(credits["id"], "103")
    admin.topup(credits["id"], "7.5", mode="test")
    postpaid = admin.account("postpaid", "euros", credit_limit="500")
    assert admin.post(postpaid["id"], "charges", amount="12.34").status_code == 201
    pounds = admin.account("prepaid", "pounds")
    admin.topup(pounds["id"], "10.3")
    assert admin.post(pounds["id"], "charges", amount="1.1").status_code == 201  # 9.2 left
    revoked = admin.key(credits["id"])
    assert admin.http.delete(f"/v1/keys/{revoked['id']}").status_code == 200
    yield Keys(
        prepaid_credits=admin.key(credits["id"])["key"],
        postpaid=admin.key(postpaid["id"])["key"],
        pounds_with_decimals=admin.key(pounds["id"])["key"],
        unknown="Zz" + "9" * 23,
        revoked=revoked["key"],
        test=admin.key(credits["id"], "test")["key"],
    )
