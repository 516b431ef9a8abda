"""The outcomes a planned field can have (DESIGN §2), and what each means."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    WRITTEN = "written"  # the CRM accepted the value
    UNCHANGED = "unchanged"  # the CRM already holds an equal value; nothing sent
    SKIPPED_POLICY = "skipped_policy"  # deny list or a write policy; ``reason`` says which
    UNLINKED = "unlinked"  # the model's slot is empty on this recording
    UNKNOWN_MODEL = "unknown_model"  # no model map entry (or the CRM has no such object)
    UNKNOWN_FIELD = "unknown_field"  # the object has no such field
    NOT_WRITABLE = "not_writable"  # read-only, calculated, or a type we do not write
    INVALID_VALUE = "invalid_value"  # the value does not fit the field (ours or the CRM's reason)
    CONFLICT = "conflict"  # extractions disagree on one field; nothing written
    FAILED = "failed"  # the record is missing, or the CRM call failed after retries
    NULL_VALUE = "null_value"  # a null is not written unless ``write_nulls``
    UNSUPPORTED = "unsupported"  # the connector cannot write that model
    PLANNED = "planned"  # --dry-run: would be written


# Outcomes that make a recording's status ``partial`` and ``sync`` exit 1.
FAILING = frozenset({Outcome.FAILED, Outcome.INVALID_VALUE})
