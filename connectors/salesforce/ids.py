"""Salesforce record ids: the 18-character, case-safe form and its checksum.

Ids are checked here, locally, before any request: one malformed id in a
SOQL ``IN`` list would fail the whole query.
"""

from __future__ import annotations

import re

_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def salesforce_id18(raw: str) -> str | None:
    """The canonical 18-character id (case restored from the checksum), or None if malformed."""
    if not isinstance(raw, str) or not _ID_RE.match(raw):
        return None

    def suffix(id15: str) -> str:
        out = ""
        for chunk in range(3):
            part = id15[chunk * 5 : chunk * 5 + 5]
            out += _SUFFIX_ALPHABET[sum(1 << i for i, c in enumerate(part) if "A" <= c <= "Z")]
        return out

    if len(raw) == 15:
        return raw + suffix(raw)
    code = raw[15:].upper()
    chars = list(raw[:15])
    for chunk, letter in enumerate(code):
        bits = _SUFFIX_ALPHABET.find(letter)
        if bits < 0:
            return None
        for pos in range(5):
            index = chunk * 5 + pos
            if bits & (1 << pos):
                if not chars[index].isalpha():
                    return None
                chars[index] = chars[index].upper()
            elif chars[index].isalpha():
                chars[index] = chars[index].lower()
    id15 = "".join(chars)
    return id15 + code if suffix(id15) == code else None


__all__ = ["salesforce_id18"]
