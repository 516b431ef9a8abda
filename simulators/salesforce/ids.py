"""Salesforce record ids: the 15- and 18-character forms and deterministic new ids.

A 15-character id is case-sensitive. The 18-character form appends three
characters that say which of the first 15 are upper case, so it survives
case-insensitive handling; Salesforce accepts either form and answers with
the 18-character one. Every id starts with its object's three-character key
prefix (``006`` Opportunity, ``001`` Account, ...).
"""

from __future__ import annotations

import re
from typing import Any

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_CHARS = re.compile(r"^[A-Za-z0-9]+$")


def id_suffix(id15: str) -> str:
    """The three-character checksum that turns a 15-character id into 18."""
    out = []
    for chunk in range(3):
        part = id15[chunk * 5 : chunk * 5 + 5]
        bits = sum(1 << pos for pos, char in enumerate(part) if "A" <= char <= "Z")
        out.append(_SUFFIX_ALPHABET[bits])
    return "".join(out)


def to_id18(raw: Any) -> str | None:
    """The canonical 18-character form of a Salesforce id, or None if malformed.

    A 15-character id is case-sensitive; an 18-character id is read
    case-insensitively (its suffix restores the case of the first 15
    characters, as Salesforce does) and must carry a consistent checksum.
    """
    if not isinstance(raw, str) or not _ID_CHARS.match(raw):
        return None
    if len(raw) == 15:
        return raw + id_suffix(raw)
    if len(raw) != 18:
        return None
    suffix = raw[15:].upper()
    chars = list(raw[:15])
    for chunk, code in enumerate(suffix):
        bits = _SUFFIX_ALPHABET.find(code)
        if bits < 0:
            return None
        for pos in range(5):
            index = chunk * 5 + pos
            char = chars[index]
            if bits & (1 << pos):
                if not char.isalpha():
                    return None
                chars[index] = char.upper()
            elif char.isalpha():
                chars[index] = char.lower()
    id15 = "".join(chars)
    if id_suffix(id15) != suffix:
        return None
    return id15 + suffix


def make_id(key_prefix: str, number: int, *, pod: str = "5g00000") -> str:
    """A deterministic, valid 18-character id: prefix + pod + base62 counter."""
    digits = []
    value = number * 104729 + 3_000_000  # spread the counter so ids mix upper and lower case
    for _ in range(15 - len(key_prefix) - len(pod)):
        digits.append(_BASE62[value % 62])
        value //= 62
    id15 = key_prefix + pod + "".join(reversed(digits))
    return id15 + id_suffix(id15)
