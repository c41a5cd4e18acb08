"""Sealed text: what the Redis backends keep is encrypted, and only the right keys open it."""

from __future__ import annotations

import base64

import pytest

from signaling.sealed_text import PREFIX, Unsealable, derive_keys, seal, unseal

SECRET = b"a-signing-secret-that-is-long-enough-0001"
OTHER = b"another-signing-secret-long-enough-00002"
OLD = b"an-older-signing-secret-long-enough-0003"


def test_round_trip_hides_the_text() -> None:
    keys = derive_keys(SECRET)
    sealed = seal(keys, "I feel better today", "chat:p1")
    assert sealed.startswith(PREFIX)
    assert "feel" not in sealed
    assert unseal(keys, sealed, "chat:p1") == "I feel better today"
    assert unseal(keys, seal(keys, "", "x"), "x") == ""
    assert unseal(keys, seal(keys, "Grüße 😊", "x"), "x") == "Grüße 😊"
    # JSON may carry a lone surrogate (found by the fuzz): it round-trips as it came.
    assert unseal(keys, seal(keys, "a\ud800b", "x"), "x") == "a\ud800b"


def test_each_seal_is_different() -> None:
    keys = derive_keys(SECRET)
    assert seal(keys, "same", "c") != seal(keys, "same", "c")


def test_nodes_with_the_same_secret_share_the_key() -> None:
    assert unseal(derive_keys(SECRET), seal(derive_keys(SECRET), "hi", "c"), "c") == "hi"


def test_tampered_ciphertext_is_refused() -> None:
    keys = derive_keys(SECRET)
    sealed = seal(keys, "hello there", "c")
    raw = bytearray(base64.urlsafe_b64decode(sealed[len(PREFIX) :]))
    raw[-1] ^= 1
    tampered = PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(Unsealable):
        unseal(keys, tampered, "c")
    with pytest.raises(Unsealable):
        unseal(keys, sealed[:-8], "c")


def test_another_context_is_refused() -> None:
    keys = derive_keys(SECRET)
    with pytest.raises(Unsealable):
        unseal(keys, seal(keys, "for p1", "chat:p1"), "chat:p2")


def test_wrong_key_is_refused() -> None:
    with pytest.raises(Unsealable):
        unseal(derive_keys(OTHER), seal(derive_keys(SECRET), "hello", "c"), "c")


def test_a_previous_key_still_opens_and_the_current_one_seals() -> None:
    before = derive_keys(OLD)
    after = derive_keys(SECRET, [OLD])
    assert unseal(after, seal(before, "sent before the rotation", "c"), "c") == (
        "sent before the rotation"
    )
    # Sealed after the rotation: the old key alone cannot open it.
    with pytest.raises(Unsealable):
        unseal(before, seal(after, "sent after", "c"), "c")


@pytest.mark.parametrize("value", ["plain text", "", "s1.", "s1.!!!", "s1.AAAA", None, 5])
def test_what_is_not_sealed_is_refused(value: object) -> None:
    with pytest.raises(Unsealable):
        unseal(derive_keys(SECRET), value, "c")  # type: ignore[arg-type]
