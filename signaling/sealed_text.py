"""Sealed text: what Redis keeps or relays, encrypted under a key every node derives alike.

Chat, lobby notices and denial messages must never reach a disk in plaintext, and Redis
writes what it keeps to its append-only file and snapshots. The Redis bus seals every
envelope and the Redis store seals the room's texts with these functions; the memory
backends need nothing (they never touch a disk).

- The key: HKDF-SHA256 of the nodes' shared signing secret (`SESSIONROOM_SECRET`), with a
  fixed info label, so nodes with the same secret share it and nothing else is configured.
  Older secrets (`SESSIONROOM_PREVIOUS_SECRETS`) give older keys, which still open what was
  sealed before a rotation; sealing always uses the current one.
- Each text: AES-256-GCM with a random 96-bit nonce, and a context (which room, which
  participant) as associated data, so a sealed value cannot be moved to another place.
- The form: `s1.` and the base64url of nonce + ciphertext + tag, a JSON-safe string.

A value that does not open (tampered, or sealed by a node with another secret) raises
`Unsealable`; callers drop it and log ids, never the value.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "s1."
INFO = b"sessionroom sealed text v1"
NONCE_BYTES = 12
# JSON lets a text hold a lone surrogate ("\ud800"), which UTF-8 cannot: kept as it came.
TEXT, SURROGATES = "utf-8", "surrogatepass"


class Unsealable(ValueError):
    """Not a value sealed under any of these keys for this context."""


@dataclass(frozen=True)
class SealKeys:
    # The first seals; every one opens (the current key first, then the older ones).
    ciphers: tuple[AESGCM, ...]


def derive_keys(secret: bytes, previous: Iterable[bytes] = ()) -> SealKeys:
    return SealKeys(tuple(AESGCM(_derive(s)) for s in (secret, *previous)))


def _derive(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(secret)


def seal(keys: SealKeys, text: str, context: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = keys.ciphers[0].encrypt(nonce, text.encode(TEXT, SURROGATES), context.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def unseal(keys: SealKeys, value: str, context: str) -> str:
    if not isinstance(value, str) or not value.startswith(PREFIX):
        raise Unsealable("not a sealed value")
    try:
        raw = base64.urlsafe_b64decode(value[len(PREFIX) :].encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise Unsealable("not a sealed value") from None
    nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    if len(nonce) < NONCE_BYTES or len(sealed) < 16:
        raise Unsealable("too short")
    for cipher in keys.ciphers:
        try:
            return cipher.decrypt(nonce, sealed, context.encode()).decode(TEXT, SURROGATES)
        except InvalidTag:
            continue
    raise Unsealable("no key opens it")
