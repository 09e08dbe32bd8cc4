from __future__ import annotations

import math

import pytest

from birdbalance.keys import (
    generate_key,
    hash_key,
    hint_of,
    is_well_formed,
    key_from_authorization,
    mode_of,
)
from birdbalance.ledger import Mode

TEST_SECRET = b"s" * 32


def test_keys_look_like_messagebird_keys() -> None:
    live, test = generate_key(Mode.LIVE), generate_key(Mode.TEST)
    assert len(live) == 25 and live.isalnum()
    assert test.startswith("test_") and len(test) == 30
    assert mode_of(live) is Mode.LIVE and mode_of(test) is Mode.TEST
    assert is_well_formed(live) and is_well_formed(test)
    # 25 characters of 62 symbols carry more than 128 bits.
    assert 25 * math.log2(62) > 128


def test_keys_are_unique_and_hashed() -> None:
    keys = {generate_key(Mode.LIVE) for _ in range(2000)}
    assert len(keys) == 2000
    key = keys.pop()
    assert len(hash_key(key, TEST_SECRET)) == 32 and key.encode() not in hash_key(key, TEST_SECRET)
    assert hint_of(key) == "…" + key[-4:]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"AccessKey test_gshuPaZoeEG6ovbc8M79w0QyM", "test_gshuPaZoeEG6ovbc8M79w0QyM"),
        (b"accesskey gshuPaZoeEG6ovbc8M79w0QyM", "gshuPaZoeEG6ovbc8M79w0QyM"),
        (b"Bearer gshuPaZoeEG6ovbc8M79w0QyM", None),
        (b"AccessKey", None),
        (b"AccessKey short", None),
        (b"AccessKey gshuPaZoeEG6ovbc8M79w0Qy\x00", None),
        (b"AccessKey gshuPaZoeEG6ovbc8M79w0Qy\xff", None),
        (b"AccessKey " + b"a" * 5000, None),
    ],
)
def test_authorization_header(header: bytes, expected: str | None) -> None:
    assert key_from_authorization(header) == expected


def test_ids_made_one_after_another_sort_in_that_order() -> None:
    from birdbalance.ids import new_id

    made = [new_id("evt") for _ in range(5000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(len(i) == 30 for i in made)


def test_ids_are_written_in_crockford_base32_digit_by_digit() -> None:
    import random

    from birdbalance.ids import crockford

    digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

    def one_at_a_time(value: int) -> str:
        out = []
        for _ in range(26):
            value, digit = divmod(value, 32)
            out.append(digits[digit])
        return "".join(reversed(out))

    rng = random.Random(17)
    for value in [
        0,
        1,
        31,
        32,
        1 << 127,
        (1 << 128) - 1,
        *(rng.getrandbits(128) for _ in range(20_000)),
    ]:
        assert crockford(value) == one_at_a_time(value), value
