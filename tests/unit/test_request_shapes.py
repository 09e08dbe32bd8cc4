"""Request bodies read through their models (birdbalance.request_shapes): exact amounts,
named parameters in every refusal, and the fingerprint a body gives its Idempotency-Key."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from birdbalance import request_shapes as bodies
from birdbalance.errors import BadRequest, InvalidParameter, MissingParameter, ServiceError
from birdbalance.service.inputs import minor, seconds
from birdbalance.validation import (
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_REFERENCE_CHARS,
    idempotency_key,
)


def _refused(model: type[bodies.Body], raw: bytes | dict[str, Any]) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        bodies.read(model, raw)
    return caught.value


def test_json_numbers_keep_their_text() -> None:
    entry = bodies.read(bodies.NewEntry, b'{"amount": 9.20}')
    assert entry.amount == "9.20"
    assert minor(entry.amount, "amount") == 9_200_000
    big = bodies.read(bodies.NewEntry, b'{"amount": 123456789012345678901234567890}')
    assert big.amount == "123456789012345678901234567890"  # not a float on the way


def test_a_body_gives_the_fingerprint_it_gave_before_models() -> None:
    """The fingerprint hashes what the body said, as the earlier dict parser did: JSON
    numbers as their text, explicit nulls and defaults kept, absent fields absent."""
    raw = b'{"amount": 9.20, "mode": "live", "reference": null, "metadata": {"a": "b"}}'
    said = bodies.given(bodies.read(bodies.NewEntry, raw))
    assert said == {"amount": "9.20", "mode": "live", "reference": None, "metadata": {"a": "b"}}
    assert bodies.given(bodies.read(bodies.NewHold, b'{"amount":"1","expires_in":60}')) == {
        "amount": "1",
        "expires_in": "60",
    }
    assert bodies.given(bodies.read(bodies.NewEntry, {"amount": "1"})) == {"amount": "1"}


@pytest.mark.parametrize(
    "raw",
    [b"[1]", b"not json", b'{"amount": NaN}', b'{"amount": Infinity}', b"\xff\xfe", b'"x"', b"{"],
)
def test_bodies_that_are_not_objects_are_bad_requests(raw: bytes) -> None:
    assert isinstance(_refused(bodies.NewEntry, raw), BadRequest)


def test_lone_surrogates_are_bad_requests() -> None:
    assert isinstance(
        _refused(bodies.NewEntry, rb'{"amount":"1","reference":"\ud800"}'), BadRequest
    )


def test_deep_nesting_is_refused_by_type() -> None:
    raw = b'{"amount":"1","metadata":{"a":' + b'{"a":' * 200 + b"1" + b"}" * 201 + b"}"
    error = _refused(bodies.NewEntry, raw)
    assert isinstance(error, InvalidParameter) and error.parameter == "metadata"


def test_an_empty_body_is_an_empty_object() -> None:
    assert bodies.read(bodies.VoidHold, b"") == bodies.VoidHold()
    assert isinstance(_refused(bodies.NewEntry, b" "), MissingParameter)


@pytest.mark.parametrize("amount", ["1e3", "1.1234567", "-1", "0x1", " 1", "1_000"])
def test_bad_amount_text_is_refused_by_the_money_grammar(amount: str) -> None:
    entry = bodies.read(bodies.NewEntry, {"amount": amount})
    with pytest.raises(InvalidParameter) as caught:
        minor(entry.amount, "amount")
    assert caught.value.parameter == "amount"


@pytest.mark.parametrize("amount", [1.5, True, None, [], {}])
def test_amounts_that_are_not_text_or_json_numbers(amount: object) -> None:
    error = _refused(bodies.NewEntry, {"amount": amount})
    assert isinstance(error, InvalidParameter) and error.parameter == "amount"
    assert "decimal string" in error.description


@pytest.mark.parametrize(
    ("raw", "kind", "parameter", "words"),
    [
        (b'{"amount":"1","ammount":"2"}', InvalidParameter, "ammount", "unknown parameter"),
        (b"{}", MissingParameter, "amount", "amount is required"),
        (b'{"amount":"1","mode":"prod"}', InvalidParameter, "mode", "one of live, test"),
        (b'{"amount":"1","reference":""}', InvalidParameter, "reference", "not be empty"),
        (b'{"amount":"1","reference":"a\\u0000b"}', InvalidParameter, "reference", "NUL"),
        (b'{"amount":"1","reference":5}', InvalidParameter, "reference", "must be a string"),
        (b'{"amount":"1","metadata":[]}', InvalidParameter, "metadata", "must be an object"),
        (b'{"amount":"1","metadata":{"a":1}}', InvalidParameter, "metadata", "value must be"),
        (b'{"amount":"1","metadata":{"":"x"}}', InvalidParameter, "metadata", "key must not"),
    ],
)
def test_refusals_name_the_parameter(
    raw: bytes, kind: type[ServiceError], parameter: str, words: str
) -> None:
    error = _refused(bodies.NewEntry, raw)
    assert type(error) is kind, error
    assert error.parameter == parameter and words in error.description, error.description


def test_limits_are_the_constants() -> None:
    long = "x" * (MAX_REFERENCE_CHARS + 1)
    error = _refused(bodies.NewEntry, {"amount": "1", "reference": long})
    assert f"at most {MAX_REFERENCE_CHARS} characters" in error.description
    many = {str(n): "v" for n in range(MAX_METADATA_KEYS + 1)}
    assert (
        f"at most {MAX_METADATA_KEYS} keys"
        in _refused(bodies.NewEntry, {"amount": "1", "metadata": many}).description
    )
    wide = {"a": "v" * (MAX_METADATA_VALUE_CHARS + 1)}
    assert (
        str(MAX_METADATA_VALUE_CHARS)
        in _refused(bodies.NewEntry, {"amount": "1", "metadata": wide}).description
    )


def test_nested_fields_are_named_by_their_path_and_reported_on_the_top_one() -> None:
    error = _refused(bodies.NewAlert, b'{"below":"1","recharge":{"max_failures":0}}')
    assert error.parameter == "recharge" and "recharge.max_failures" in error.description
    error = _refused(bodies.NewAlert, b'{"below":"1","recharge":{"nope":1}}')
    assert error.parameter == "recharge" and "recharge.nope" in error.description
    error = _refused(bodies.NewWebhook, b'{"url":"http://x","events":["balance.lo"]}')
    assert error.parameter == "events" and "balance.low" in error.description


@pytest.mark.parametrize("value", [b"60", b'"60"'])
def test_whole_seconds_are_a_json_integer_or_digits(value: bytes) -> None:
    hold = bodies.read(bodies.NewHold, b'{"amount":"1","expires_in":' + value + b"}")
    assert seconds(hold.expires_in, "expires_in", default=1, minimum=1, maximum=99) == 60


@pytest.mark.parametrize("value", [b"6.0", b"true", b'"-1"', b'"1e2"', b"0", b"100"])
def test_whole_seconds_out_of_grammar_or_range(value: bytes) -> None:
    with pytest.raises(InvalidParameter) as caught:
        hold = bodies.read(bodies.NewHold, b'{"amount":"1","expires_in":' + value + b"}")
        seconds(hold.expires_in, "expires_in", default=1, minimum=1, maximum=99)
    assert caught.value.parameter == "expires_in"


def test_the_schemas_carry_required_and_the_limits() -> None:
    schemas = bodies.schemas()
    assert schemas["NewRefund"]["required"] == ["amount", "charge"]
    assert schemas["NewEntry"]["additionalProperties"] is False
    reference = schemas["NewEntry"]["properties"]["reference"]["anyOf"][0]
    assert reference["maxLength"] == MAX_REFERENCE_CHARS and reference["minLength"] == 1
    for model in bodies.MODELS:
        assert model.__name__ in schemas
        assert msgspec.structs.fields(model) is not None


def test_idempotency_key_rules() -> None:
    with pytest.raises(MissingParameter):
        idempotency_key(None, required=True)
    assert idempotency_key(None, required=False) is None
    assert idempotency_key("order-1", required=True) == "order-1"
    for bad in ["", "a b", "x" * 256, "é"]:
        with pytest.raises(InvalidParameter):
            idempotency_key(bad, required=True)
