"""Write policies: whether a value that differs from the CRM's is sent (DESIGN §1 "diff").

A field's policy comes from ``[connections.fields] policy`` (``overwrite`` by
default). ``verdict`` is the diff: a value equal to the CRM's is
``unchanged`` whatever the policy; otherwise the policy may keep the CRM's
value (``skipped_policy``, with the reason's code first):

* ``overwrite``: always send;
* ``fill_empty``: only when the CRM field is empty;
* ``protect_edits``: only when the CRM still holds a value we wrote (the last
  written one, or one we sent since and never recorded: a worker killed after
  the CRM accepted it), or when the field is empty and we never wrote it;
  otherwise a person changed it since, and their edit stands;
* ``review``: never sent by the pipeline: the value becomes a proposal
  (``pending_review``) that a person approves or rejects (``review``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.base import FieldSchema
from worker.pipeline import coercion
from worker.report import Outcome

OVERWRITE, FILL_EMPTY, PROTECT_EDITS, REVIEW = "overwrite", "fill_empty", "protect_edits", "review"
POLICIES = (OVERWRITE, FILL_EMPTY, PROTECT_EDITS, REVIEW)
#: The reason of a field held for review (``writeback review`` lists it).
HELD = "review: waiting for a person (writeback review)"


def verdict(policy: str, previous: Any, value: Any, field: FieldSchema, ours: Sequence[Any] | None = None,
            written: bool = False) -> tuple[Outcome, str] | None:
    """The outcome decided by comparing with the CRM, or None to send ``value``.

    ``ours`` (``Ledger.protected_values``): the values the CRM may hold because
    we put them there, None when we never sent this field; ``written``: we
    have a recorded ``written`` attempt of it. A field we only ever tried to
    write (a send that failed) and that is still empty was never ours to
    protect: it is written.
    """
    if coercion.same_value(previous, value, field):
        return Outcome.UNCHANGED, None  # type: ignore[return-value]
    if policy == FILL_EMPTY and not coercion.is_empty(previous):
        return Outcome.SKIPPED_POLICY, "fill_empty: the CRM field already has a value"
    if policy == PROTECT_EDITS:
        return _protect_edits(previous, field, ours, written)
    if policy == REVIEW:  # a value that would really be written: a person decides (``worker.pipeline.review``)
        return Outcome.PENDING_REVIEW, HELD
    return None


def _protect_edits(previous: Any, field: FieldSchema, ours: Sequence[Any] | None,
                   written: bool) -> tuple[Outcome, str] | None:
    if not written and coercion.is_empty(previous):
        return None
    if ours is None:
        if not coercion.is_empty(previous):
            return Outcome.SKIPPED_POLICY, "edited: the CRM field has a value we did not write"
        return None
    if not any(coercion.same_value(previous, coercion.parse_current(value, field), field) for value in ours):
        return Outcome.SKIPPED_POLICY, "edited: the CRM field changed since our last write"
    return None
