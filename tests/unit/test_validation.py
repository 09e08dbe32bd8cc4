from __future__ import annotations

import pytest

from birdbalance.errors import BadRequest, InvalidParameter, MissingParameter
from birdbalance.validation import Fields, idempotency_key, parse_json_body


def test_json_numbers_keep_their_text() -> None:
    body = parse_json_body(b'{"amount": 9.2, "other": 10}')
    assert body["amount"] == "9.2" and body["other"] == "10"
    assert Fields(body).amount("amount") == 9_200_000


@pytest.mark.parametrize(
    "raw", [b"[1]", b"not json", b'{"amount": NaN}', b'{"a": Infinity}', b"\xff\xfe", b'"x"']
)
def test_bodies_that_are_not_objects_are_bad_requests(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_json_body(raw)


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(BadRequest, match="nests"):
        parse_json_body(b'{"a":' * 20 + b"1" + b"}" * 20)


@pytest.mark.parametrize("amount", ["1e3", 1.5, True, "1.1234567", "-1", "0x1"])
def test_bad_amounts(amount: object) -> None:
    with pytest.raises(InvalidParameter) as caught:
        Fields({"amount": amount}).amount("amount")
    assert caught.value.parameter == "amount"


def test_exponent_json_number_is_refused() -> None:
    body = parse_json_body(b'{"amount": 1e3}')
    with pytest.raises(InvalidParameter):
        Fields(body).amount("amount")


def test_unknown_fields_are_named() -> None:
    fields = Fields({"amount": "1", "ammount": "2"})
    fields.amount("amount")
    with pytest.raises(InvalidParameter) as caught:
        fields.done()
    assert caught.value.parameter == "ammount"


def test_idempotency_key_rules() -> None:
    with pytest.raises(MissingParameter):
        idempotency_key(None, required=True)
    assert idempotency_key(None, required=False) is None
    assert idempotency_key("order-1", required=True) == "order-1"
    for bad in ["", "a b", "x" * 256, "é"]:
        with pytest.raises(InvalidParameter):
            idempotency_key(bad, required=True)
