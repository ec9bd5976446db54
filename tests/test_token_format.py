"""Token strings: shape, checksum and the forms that may be stored or shown."""

import hashlib
import zlib

from contracts import from_millis, to_millis, utc_now
from contracts.token_format import (
    BASE62,
    checksum,
    find_tokens,
    hint,
    is_well_formed,
    mask_tokens_in,
    mint,
    secret_digest,
)


def test_minted_token_has_prefix_random_part_and_checksum() -> None:
    token = mint("tok")
    prefix, _, body = token.partition("_")
    assert prefix == "tok"
    assert len(body) == 38
    assert set(body) <= set(BASE62)
    assert body[32:] == checksum(body[:32])


def test_checksum_is_crc32_in_base62_left_padded() -> None:
    # Pinned values: CRC-32 2700251856 and 551612971 written in base62 by hand.
    assert zlib.crc32(b"0" * 32) == 2700251856
    assert checksum("0" * 32) == "2wjyrI"
    small = "00000000000000000000000000000013"
    assert zlib.crc32(small.encode()) == 551612971
    assert checksum(small) == "0bKVjP"  # five digits, padded to six


def test_minted_tokens_are_well_formed_and_distinct() -> None:
    tokens = {mint() for _ in range(200)}
    assert len(tokens) == 200
    assert all(is_well_formed(token) for token in tokens)


def test_a_changed_character_fails_the_checksum() -> None:
    token = mint()
    position = 10
    swapped = "B" if token[position] != "B" else "C"
    tampered = token[:position] + swapped + token[position + 1 :]
    assert not is_well_formed(tampered)


def test_wrong_prefix_length_or_alphabet_is_malformed() -> None:
    token = mint("tok")
    assert not is_well_formed(token, prefix="abc")
    assert not is_well_formed(token[:-1])
    assert not is_well_formed(token + "0")
    assert not is_well_formed(token[:-6] + "!!!!!!")
    assert not is_well_formed("")


def test_custom_prefix_round_trips() -> None:
    token = mint("acme")
    assert token.startswith("acme_")
    assert is_well_formed(token, prefix="acme")


def test_digest_is_lowercase_hex_sha256_of_the_whole_string() -> None:
    token = mint()
    assert secret_digest(token) == hashlib.sha256(token.encode()).hexdigest()


def test_hint_is_prefix_and_four_characters() -> None:
    token = mint()
    assert hint(token) == token[:8]


def test_tokens_are_found_next_to_underscores_and_words() -> None:
    token = mint()
    for text in (f"x_{token}", f"{token}_old", f"TOKEN_{token}", f"key={token};", token):
        assert find_tokens(text) == [token]
    assert find_tokens(token + "X") == []


def test_glued_mode_finds_tokens_with_text_glued_on_either_side() -> None:
    token = mint()
    body = token.partition("_")[2]
    assert find_tokens(f"{token}X", glued=True) == [token]
    assert find_tokens(f"x{token}abc", glued=True) == [f"x{token}"]
    assert find_tokens(f"x{token}abc", "tok", glued=True) == [token]
    assert find_tokens(f"tok_{body[:-1]}Z", glued=True) == []  # a wrong checksum
    assert find_tokens("a" * 200_000 + "_" + "b" * 200_000, glued=True) == []  # and fast


def test_masking_catches_glued_tokens_and_keeps_lookalikes_masked() -> None:
    token = mint()
    lookalike = "tok_" + "A" * 38
    masked = mask_tokens_in(f"a {token}X b {lookalike} c x{token}")
    assert masked == "a tok_***X b tok_*** c xtok_***"


def test_milliseconds_round_trip_exactly() -> None:
    now = utc_now()
    assert from_millis(to_millis(now)) == now
    assert to_millis(from_millis(2_147_483_647_123)) == 2_147_483_647_123
